"""A platform's own cgroup parent: finding, emptying and removing its groups.

Every data directory gets one parent group (``labfleet-<hash>``) in every
mounted hierarchy (v1 controllers and the v2 unified tree). Removing a user
(``labfleet users remove --purge``) removes their servers' groups; a clean
stop of the platform removes the parent itself, so nothing is left behind.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

from labfleet.spawn.limits.base import check_group, read_pids
from labfleet.spawn.limits.detect import MOUNTINFO, parse_mountinfo
from labfleet.spawn.limits.kill import kill_until_empty


def parent_dirs(parent: str, mountinfo: Path = MOUNTINFO) -> list[Path]:
    """The parent group's directory in every mounted cgroup hierarchy (existing ones)."""
    check_group(parent)
    try:
        mounts = parse_mountinfo(mountinfo.read_text())
    except OSError:
        return []
    found = {mount.path / parent for mount in mounts}
    return sorted(path for path in found if path.is_dir())


def _remove_group(path: Path) -> bool:
    """Kill what runs in ``path`` (children first) and rmdir it; False if still busy."""
    for child in sorted(p for p in path.iterdir() if p.is_dir()):
        _remove_group(child)
    kill_file = path / "cgroup.kill"
    if kill_file.exists():
        with contextlib.suppress(OSError):
            kill_file.write_text("1")
    kill_until_empty(lambda: read_pids([path / "cgroup.procs"]))
    try:
        os.rmdir(path)
    except FileNotFoundError:
        return True
    except OSError:
        return False
    return True


def _belongs_to(group: str, user_slug: str) -> bool:
    return group == user_slug or group.startswith(f"{user_slug}--")


def remove_user_groups(parent: str, user_slug: str, mountinfo: Path = MOUNTINFO) -> list[str]:
    """Remove the groups of one user's servers (default and named); returns their paths."""
    removed: list[str] = []
    for directory in parent_dirs(parent, mountinfo):
        for group in sorted(p for p in directory.iterdir() if p.is_dir()):
            if _belongs_to(group.name, user_slug) and _remove_group(group):
                removed.append(str(group))
    return removed


def remove_parent(parent: str, mountinfo: Path = MOUNTINFO) -> list[str]:
    """Remove the platform's parent group everywhere (and anything left inside it)."""
    return [str(path) for path in parent_dirs(parent, mountinfo) if _remove_group(path)]
