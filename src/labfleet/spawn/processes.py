"""Small, careful process helpers: liveness without pid-reuse mistakes, group kill."""

from __future__ import annotations

import contextlib
import os
import signal
from dataclasses import dataclass
from pathlib import Path


def start_ticks(pid: int) -> int | None:
    """Kernel start time of ``pid`` (clock ticks since boot), None if gone.

    Stored with the pid so a recycled pid is never mistaken for our server.
    """
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # the command name may contain spaces and parentheses: split after the last ')'
    fields = stat[stat.rfind(")") + 2 :].split()
    if fields[0] == "Z":
        return None
    return int(fields[19])


def reap(pid: int) -> None:
    """Collect ``pid`` if it is our exited child (avoids zombies that look alive)."""
    with contextlib.suppress(ChildProcessError, OSError):
        os.waitpid(pid, os.WNOHANG)


def is_alive(pid: int, ticks: int | None = None) -> bool:
    if pid <= 0:
        return False
    reap(pid)
    current = start_ticks(pid)
    if current is None:
        return False
    return ticks is None or current == ticks


def signal_group(pid: int, sig: signal.Signals) -> None:
    """Signal the server's whole session (server + kernels).

    Servers are started with ``start_new_session``, so their pid is also their
    process-group id; signalling the group never falls back to a bare pid that
    may since have been recycled.
    """
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, sig)


def _own_start_ticks() -> int:
    """This process's start ticks, read with plain syscalls (safe between fork and exec)."""
    fd = os.open("/proc/self/stat", os.O_RDONLY)
    try:
        stat = os.read(fd, 4096)
    finally:
        os.close(fd)
    return int(stat[stat.rfind(b")") + 2 :].split()[19])


def write_pid_record(path: Path, pid: int, ticks: int) -> None:
    """Write "pid ticks" atomically (a reader sees the old record or the new, never half)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(f"{pid} {ticks}\n")
    os.replace(tmp, path)


def read_pid_record(path: Path) -> tuple[int, int] | None:
    """The "pid ticks" of a record, None when missing or unreadable."""
    try:
        pid_text, ticks_text = path.read_text().split()
        return int(pid_text), int(ticks_text)
    except (OSError, ValueError):
        return None


@dataclass(frozen=True)
class RecordPid:
    """A ``pre_exec`` hook: the server writes its own pid record before anything else.

    Written by the new process itself, between fork and exec, the record exists
    before the server can do anything at all, whoever launched it (exec or a
    fork-server) and whenever the hub dies: there is no instant at which a
    server runs without a pid file for the orphan sweep to find. Plain syscalls
    only (no buffering, locks or logging); a module-level dataclass, so it
    pickles as it is for a fork-server.
    """

    path: bytes

    def __call__(self) -> None:
        pid = os.getpid()
        record = f"{pid} {_own_start_ticks()}\n".encode()
        tmp = self.path + f".{pid}.tmp".encode()
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        try:
            os.write(fd, record)
        finally:
            os.close(fd)
        os.rename(tmp, self.path)


def record_pid_hook(path: Path) -> RecordPid:
    path.parent.mkdir(parents=True, exist_ok=True)
    return RecordPid(os.fsencode(path))
