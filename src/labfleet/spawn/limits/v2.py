"""cgroup v2 (unified): one directory, ``memory.max``, ``cpu.max``, ``pids.max``.

Groups live in ``<root>/labfleet/<group>``; the controllers are enabled in
``cgroup.subtree_control`` of the root and of ``labfleet``. Leftovers are
killed at once with ``cgroup.kill`` where the kernel has it (5.14+).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterable
from pathlib import Path

from labfleet.spawn.limits.base import (
    CPU_PERIOD_US,
    Limits,
    LimitsError,
    check_group,
    join_hook,
    read_pids,
    write_value,
)
from labfleet.spawn.limits.kill import kill_until_empty


class CgroupV2:
    name = "cgroup v2"

    def __init__(self, root: Path, controllers: Iterable[str], parent: str = "labfleet") -> None:
        self.root = root
        self.parent = check_group(parent)
        self.controllers = frozenset(controllers)

    def location(self) -> str:
        return str(self.root / self.parent)

    def _dir(self, group: str) -> Path:
        return self.root / self.parent / check_group(group)

    def _enable_controllers(self) -> None:
        wanted = " ".join(f"+{c}" for c in sorted(self.controllers))
        parent = self.root / self.parent
        parent.mkdir(exist_ok=True)
        for directory in (self.root, parent):
            enabled = set((directory / "cgroup.subtree_control").read_text().split())
            if not self.controllers <= enabled:
                write_value(directory / "cgroup.subtree_control", wanted)

    def create(self, group: str, limits: Limits) -> None:
        self._enable_controllers()
        path = self._dir(group)
        path.mkdir(exist_ok=True)
        if "memory" in self.controllers:
            write_value(path / "memory.max", "max" if limits.memory is None else str(limits.memory))
            swap = path / "memory.swap.max"
            if swap.exists():  # a limit that spills into swap is no limit
                write_value(swap, "max" if limits.memory is None else "0")
        if "cpu" in self.controllers:
            quota = limits.cpu_quota_us()
            write_value(path / "cpu.max", f"{'max' if quota is None else quota} {CPU_PERIOD_US}")
        if "pids" in self.controllers:
            write_value(path / "pids.max", "max" if limits.pids is None else str(limits.pids))

    def join_hook(self, group: str) -> Callable[[], None]:
        return join_hook([self._dir(group) / "cgroup.procs"])

    def pids(self, group: str) -> list[int]:
        return read_pids([self._dir(group) / "cgroup.procs"])

    def remove(self, group: str) -> bool:
        path = self._dir(group)
        if not path.exists():
            return True
        kill_file = path / "cgroup.kill"
        if kill_file.exists():
            with contextlib.suppress(OSError, LimitsError):
                write_value(kill_file, "1")
        kill_until_empty(lambda: self.pids(group))
        try:
            os.rmdir(path)
        except FileNotFoundError:
            return True
        except OSError:
            return False
        return True

    def oom_kills(self, group: str) -> int:
        with contextlib.suppress(OSError):
            for line in (self._dir(group) / "memory.events").read_text().splitlines():
                key, _, value = line.partition(" ")
                if key == "oom_kill" and value.strip().isdigit():
                    return int(value)
        return 0
