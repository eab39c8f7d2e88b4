"""The one small interface every limits backend implements.

A backend puts one server (its process and every kernel it starts) into a
control group named after the server's slug, applies the profile's limits,
and removes the group after the server stops — killing whatever is left in
it, so a kernel that escaped the process group with ``setsid`` goes too.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

#: Group names come from labfleet.naming slugs; anything else is refused.
_GROUP_NAME = re.compile(r"[a-z][a-z0-9-]{0,80}")
CPU_PERIOD_US = 100_000
CONTROLLERS = ("memory", "cpu", "pids")


class LimitsError(OSError):
    """A control group could not be created or configured."""


@dataclass(frozen=True)
class Limits:
    """What one server may use; None: no limit of that kind."""

    cpu: float | None = None  # cores
    memory: int | None = None  # bytes
    pids: int | None = None  # processes + threads

    def cpu_quota_us(self) -> int | None:
        return None if self.cpu is None else max(1000, round(self.cpu * CPU_PERIOD_US))


class LimitsBackend(Protocol):
    #: e.g. "cgroup v2" — shown in the banner and `labfleet status`
    name: str
    #: the controllers this backend can enforce (subset of CONTROLLERS)
    controllers: frozenset[str]

    def create(self, group: str, limits: Limits) -> None:
        """Create (or update) the group and write its limits."""
        ...

    def join_hook(self, group: str) -> Callable[[], None]:
        """A ``pre_exec`` hook that moves the calling (child) process into the group."""
        ...

    def pids(self, group: str) -> list[int]:
        """Processes in the group now (empty when it does not exist)."""
        ...

    def remove(self, group: str) -> bool:
        """Kill what is left in the group and delete it; False if it is still busy."""
        ...

    def location(self) -> str:
        """Where the groups live, for humans."""
        ...

    def oom_kills(self, group: str) -> int:
        """How many processes the kernel killed at the group's memory limit (0 if unknown)."""
        ...


def check_group(group: str) -> str:
    if not _GROUP_NAME.fullmatch(group):
        raise LimitsError(f"{group!r} is not a valid control group name")
    return group


def write_value(path: Path, value: str) -> None:
    try:
        path.write_text(value)
    except OSError as exc:
        raise LimitsError(f"could not write {value!r} to {path}: {exc.strerror}") from exc


def read_pids(procs_files: Iterable[Path]) -> list[int]:
    found: set[int] = set()
    for path in procs_files:
        try:
            text = path.read_text()
        except OSError:
            continue
        found.update(int(line) for line in text.split() if line.isdigit())
    return sorted(found)


@dataclass(frozen=True)
class JoinGroup:
    """A ``pre_exec`` hook: write the child's pid into each ``cgroup.procs``.

    Runs between fork and exec (``preexec_fn``) with plain syscalls only: no
    Python-level buffering, no locks, no logging. A failure raises, which makes
    the launch fail: a server is never started outside its limits by accident.
    A module-level dataclass, so it pickles as it is when a fork-server runs it.
    """

    procs_files: tuple[bytes, ...]

    def __call__(self) -> None:
        pid = str(os.getpid()).encode()
        for path in self.procs_files:
            fd = os.open(path, os.O_WRONLY)
            try:
                os.write(fd, pid)
            finally:
                os.close(fd)


def join_hook(procs_files: Iterable[Path]) -> Callable[[], None]:
    return JoinGroup(tuple(os.fsencode(path) for path in procs_files))
