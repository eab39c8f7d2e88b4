"""Warn before the data directory's disk fills: a full disk stops logins, spawns and saves.

``free_space_warning`` is pure (numbers in, words out); ``data_dir_space``
and ``write_probe`` ask the kernel. The start-up banner, ``labfleet status`` and (for admins) the
hub pages' announcement use them, with ``local.min_free_space`` as the threshold.
"""

from __future__ import annotations

import contextlib
import html
import os
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from labfleet.config.units import format_size


@dataclass(frozen=True)
class Space:
    free: int
    total: int


def data_dir_space(data_dir: Path) -> Space | None:
    """Free space for unprivileged writers (``f_bavail``) on the disk of ``data_dir``."""
    for path in (data_dir, *data_dir.parents):
        try:
            stat = os.statvfs(path)
        except OSError:
            continue
        return Space(free=stat.f_bavail * stat.f_frsize, total=stat.f_blocks * stat.f_frsize)
    return None


def write_probe(data_dir: Path) -> OSError | None:
    """Try a small, synced write in ``data_dir``: the kernel's error if it fails, else None.

    Names what SQLite words vaguely ("unable to open database file", "disk I/O
    error") when the disk went read-only, filled up or fails (``storage_errors``).
    The probe file is removed again; a probe that cannot even start (no such
    directory) answers None: that is not a storage fault.
    """
    if not data_dir.is_dir():
        return None
    try:
        fd, name = tempfile.mkstemp(prefix=".labfleet-write-probe-", dir=data_dir)
    except OSError as exc:
        return exc
    try:
        os.write(fd, b"labfleet write probe\n")
        os.fsync(fd)
    except OSError as exc:
        return exc
    finally:
        os.close(fd)
        with contextlib.suppress(OSError):
            os.unlink(name)
    return None


def _human(n: int) -> str:
    for unit, factor in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if n >= factor:
            return f"{n / factor:.1f} {unit}"
    return f"{n} bytes"


def free_space_warning(data_dir: Path, space: Space | None, minimum: int) -> str | None:
    """A warning when less than ``minimum`` bytes are free (0: never warn)."""
    if space is None or minimum <= 0 or space.free >= minimum:
        return None
    return (
        f"LOW DISK SPACE: only {_human(space.free)} free on the disk of {data_dir} "
        f"(local.min_free_space is {format_size(minimum)}); when it is full, logins, spawns "
        "and saves fail until space is freed"
    )


def low_disk_announcement(
    data_dir: Path, minimum: int, announcement: str | Callable[[Any], str] | None = None
) -> Callable[[Any], str]:
    """A JupyterHub ``template_vars`` value (called per page with the user): the site's
    announcement, with the low-space warning added for admins (members cannot act on it,
    and the data dir's path is not theirs to see)."""

    def render(user: Any) -> str:
        shown = announcement(user) if callable(announcement) else (announcement or "")
        if user is None or not getattr(user, "admin", False):
            return shown
        low = free_space_warning(data_dir, data_dir_space(data_dir), minimum)
        if low is None:
            return shown
        warning = f"<strong>{html.escape(low)}</strong>"
        return f"{warning}<br>{shown}" if shown else warning

    return render
