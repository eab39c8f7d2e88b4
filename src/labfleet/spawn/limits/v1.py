"""cgroup v1 (legacy and hybrid layouts): one directory per controller.

``/sys/fs/cgroup/<controller>/labfleet/<group>`` for memory, cpu and pids.
v1 has no ``cgroup.kill``, so leftovers are killed one by one (the pids cap
bounds how many can be forked meanwhile).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Mapping
from pathlib import Path

from labfleet.spawn.limits.base import (
    CPU_PERIOD_US,
    Limits,
    check_group,
    join_hook,
    read_pids,
    write_value,
)
from labfleet.spawn.limits.kill import kill_until_empty

UNLIMITED = "-1"


class CgroupV1:
    name = "cgroup v1"

    def __init__(self, mounts: Mapping[str, Path], parent: str = "labfleet") -> None:
        """``mounts``: controller name → the mount point of its hierarchy."""
        self.mounts = dict(mounts)
        self.parent = check_group(parent)
        self.controllers = frozenset(self.mounts)

    def location(self) -> str:
        return ", ".join(
            f"{m}/{self.parent}" for m in sorted({str(p) for p in self.mounts.values()})
        )

    def _dirs(self, group: str) -> dict[str, Path]:
        check_group(group)
        # cpu and cpuacct often share one hierarchy: one directory serves both
        return {c: mount / self.parent / group for c, mount in self.mounts.items()}

    def _unique_dirs(self, group: str) -> list[Path]:
        return sorted(set(self._dirs(group).values()))

    def create(self, group: str, limits: Limits) -> None:
        dirs = self._dirs(group)
        for path in self._unique_dirs(group):
            path.mkdir(parents=True, exist_ok=True)
        if "memory" in dirs:
            self._memory(dirs["memory"], limits.memory)
        if "cpu" in dirs:
            quota = limits.cpu_quota_us()
            write_value(dirs["cpu"] / "cpu.cfs_period_us", str(CPU_PERIOD_US))
            write_value(
                dirs["cpu"] / "cpu.cfs_quota_us", UNLIMITED if quota is None else str(quota)
            )
        if "pids" in dirs:
            write_value(
                dirs["pids"] / "pids.max", "max" if limits.pids is None else str(limits.pids)
            )

    @staticmethod
    def _memory(path: Path, limit: int | None) -> None:
        # memsw (memory+swap) must stay >= the memory limit: open it up first, then
        # set both equal so a limited server cannot spill into swap
        memsw = path / "memory.memsw.limit_in_bytes"
        if memsw.exists():
            write_value(memsw, UNLIMITED)
        write_value(path / "memory.limit_in_bytes", UNLIMITED if limit is None else str(limit))
        if memsw.exists() and limit is not None:
            write_value(memsw, str(limit))

    def join_hook(self, group: str) -> Callable[[], None]:
        return join_hook(path / "cgroup.procs" for path in self._unique_dirs(group))

    def pids(self, group: str) -> list[int]:
        return read_pids(path / "cgroup.procs" for path in self._unique_dirs(group))

    def remove(self, group: str) -> bool:
        kill_until_empty(lambda: self.pids(group))
        removed = True
        for path in self._unique_dirs(group):
            try:
                os.rmdir(path)
            except FileNotFoundError:
                continue
            except OSError:
                removed = False
        return removed

    def oom_kills(self, group: str) -> int:
        """How many processes the kernel OOM-killed in the group (0 if unknown)."""
        path = self._dirs(group).get("memory")
        if path is None:
            return 0
        with contextlib.suppress(OSError):
            for line in (path / "memory.oom_control").read_text().splitlines():
                key, _, value = line.partition(" ")
                if key == "oom_kill" and value.strip().isdigit():
                    return int(value)
        return 0
