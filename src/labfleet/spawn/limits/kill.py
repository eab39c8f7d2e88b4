"""Empty a control group by killing its processes (both layouts)."""

from __future__ import annotations

import contextlib
import os
import signal
import time
from collections.abc import Callable


def kill_until_empty(list_pids: Callable[[], list[int]], timeout: float = 10) -> bool:
    """SIGKILL every process listed until none is left; True when the group is empty.

    Blocking with short sleeps (a killed process leaves the group only once the
    kernel has reaped its memory); call from a thread in async code.
    """
    deadline = time.monotonic() + timeout
    while True:
        pids = list_pids()
        if not pids:
            return True
        if time.monotonic() > deadline:
            return False
        for pid in pids:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)
            with contextlib.suppress(ChildProcessError, OSError):
                os.waitpid(pid, os.WNOHANG)  # our own child: do not leave a zombie in the group
        time.sleep(0.02)
