"""Warn before the data directory's disk fills: a full disk stops logins, spawns and saves.

``free_space_warning`` is pure (numbers in, words out); ``data_dir_space``
asks the kernel. Both the start-up banner and ``labfleet status`` use them,
with ``local.min_free_space`` as the threshold.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

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
