"""Session-wide rules for the whole suite."""

from __future__ import annotations

import contextlib
import os
import time
from pathlib import Path

import pytest

CGROUP_ROOT = Path("/sys/fs/cgroup")
_STARTED = time.time()


def _tags_of_dirs_under(root: Path, depth: int = 4) -> set[str]:
    """Platform tags (``labfleet-<tag>`` cgroup parents) of every directory near ``root``."""
    from labfleet.spawn.accounts import platform_tag

    tags: set[str] = set()
    base_depth = len(root.parts)
    for current, dirs, _ in os.walk(root):
        here = Path(current)
        tags.add(platform_tag(here))
        if len(here.parts) - base_depth >= depth:
            dirs.clear()
    return tags


def _remove_our_empty_cgroups(started: float, tags: set[str]) -> None:
    """rmdir the labfleet cgroups of *this* session's platforms; the kernel refuses a busy one.

    Only parents named for a data dir this session used: another pytest session
    (or a real platform) on the same host may have an empty group of a server that
    is about to start, and removing it would make that start fail.
    """
    for default in CGROUP_ROOT.glob("*/labfleet"):  # spawners built without a platform's parent
        if default.is_dir() and default.stat().st_ctime >= started:
            with contextlib.suppress(OSError):  # refused while it holds any group
                default.rmdir()
    for parent in CGROUP_ROOT.glob("*/labfleet-*"):
        tag = parent.name.removeprefix("labfleet-")
        if not parent.is_dir() or parent.stat().st_ctime < started or tag not in tags:
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
    from labfleet.spawn.accounts import (
        platform_tag,
        purge_accounts_under,
        purge_orphaned_accounts,
    )
    from tests.support.platform import STARTED_DATA_DIRS

    factory = getattr(session.config, "_tmp_path_factory", None)
    tags = {platform_tag(path) for path in STARTED_DATA_DIRS}
    if factory is not None:
        purge_accounts_under(factory.getbasetemp())
        tags |= _tags_of_dirs_under(factory.getbasetemp())
    purge_orphaned_accounts()
    _remove_our_empty_cgroups(_STARTED, tags)
