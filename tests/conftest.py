"""Session-wide rules for the whole suite."""

from __future__ import annotations

import os

import pytest


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Leave no system accounts behind.

    Platforms that isolate users create ``lf<tag>-<slug>`` accounts; those whose
    homes lie in this session's temporary folders, and those whose data dir is
    gone, are removed (their processes first) once every test has finished.
    """
    if os.geteuid() != 0:
        return
    from labfleet.spawn.accounts import purge_accounts_under, purge_orphaned_accounts

    factory = getattr(session.config, "_tmp_path_factory", None)
    if factory is not None:
        purge_accounts_under(factory.getbasetemp())
    purge_orphaned_accounts()
