"""Small, careful process helpers: liveness without pid-reuse mistakes, group kill."""

from __future__ import annotations

import contextlib
import os
import signal
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
