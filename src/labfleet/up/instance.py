"""One supervisor per data dir, and finding what a killed supervisor left behind.

The guard is an ``flock`` on ``state/up.lock`` held for the supervisor's life:
the kernel drops it when the process dies however it dies, so a SIGKILLed
supervisor never blocks the next start, while a live one always refuses a
second. The holder writes its pid into the file so the refusal can name it.

The hub the supervisor launched is recorded in ``state/hub.launch`` as
"pid start-ticks": after a supervisor crash the next one stops exactly that
process group (never by name, never a recycled pid) before starting its own hub.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import signal
import time
from pathlib import Path

from labfleet.spawn.processes import is_alive, start_ticks


class AlreadyRunning(RuntimeError):
    """Another supervisor holds the data dir's lock."""

    def __init__(self, data_dir: Path, pid: int | None):
        who = f"pid {pid}" if pid else "another process"
        super().__init__(
            f"labfleet up is already running on {data_dir} ({who}); "
            "stop it first (labfleet stop, or Ctrl-C in its terminal)"
        )
        self.pid = pid


def lock_path(state_dir: Path) -> Path:
    return state_dir / "up.lock"


def acquire(data_dir: Path, state_dir: Path) -> int:
    """Take the lock or raise :class:`AlreadyRunning`; returns the fd to keep open."""
    state_dir.mkdir(parents=True, exist_ok=True)
    path = lock_path(state_dir)
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder: int | None = None
        with contextlib.suppress(ValueError, OSError):
            holder = int(os.pread(fd, 32, 0).decode().strip() or 0) or None
        os.close(fd)
        raise AlreadyRunning(data_dir, holder) from None
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    return fd


def release(fd: int) -> None:
    with contextlib.suppress(OSError):
        os.close(fd)  # closing drops the flock


def launch_path(state_dir: Path) -> Path:
    return state_dir / "hub.launch"


def record_hub(state_dir: Path, pid: int) -> None:
    tmp = launch_path(state_dir).with_suffix(".tmp")
    tmp.write_text(f"{pid} {start_ticks(pid) or 0}\n")
    tmp.replace(launch_path(state_dir))


def forget_hub(state_dir: Path) -> None:
    launch_path(state_dir).unlink(missing_ok=True)


def recorded_hub(state_dir: Path) -> tuple[int, int] | None:
    try:
        pid_text, ticks_text = launch_path(state_dir).read_text().split()
        return int(pid_text), int(ticks_text)
    except (OSError, ValueError):
        return None


def stop_leftover_hub(state_dir: Path, timeout: float = 10) -> int | None:
    """Kill the hub (and the proxy in its process group) a dead supervisor left.

    SIGKILL, not SIGTERM: a clean hub shutdown would stop users' servers, which
    the new hub adopts instead, exactly as after a hub crash. Returns the pid.
    """
    entry = recorded_hub(state_dir)
    forget_hub(state_dir)
    if entry is None or not is_alive(*entry):
        return None
    pid, ticks = entry
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and is_alive(pid, ticks):
        time.sleep(0.05)
    return pid
