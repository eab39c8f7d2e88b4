"""Session-wide rules for the whole suite."""

from __future__ import annotations

import contextlib
import os
import time
from pathlib import Path

import pytest

CGROUP_ROOT = Path("/sys/fs/cgroup")
_STARTED = time.time()


def _remove_empty_cgroups_made_since(started: float) -> None:
    """rmdir the labfleet cgroups this session made; the kernel refuses a busy one."""
    for parent in CGROUP_ROOT.glob("*/labfleet*"):
        if not parent.is_dir() or parent.stat().st_ctime < started:
            continue
        for group in sorted(parent.rglob("*"), key=lambda p: len(p.parts), reverse=True):
            if group.is_dir():
                with contextlib.suppress(OSError):
                    group.rmdir()
        with contextlib.suppress(OSError):
            parent.rmdir()


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Leave no system accounts or control groups behind.

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
    _remove_empty_cgroups_made_since(_STARTED)
