"""``python -m labfleet.up.die_with_parent CMD...``: exec CMD so it dies with its parent.

Services the hub starts (the idle culler, the dashboard) must not outlive a hub
that was SIGKILLed: a leaked culler keeps culling with stale settings and a
valid token. ``PR_SET_PDEATHSIG`` asks the kernel to send SIGTERM when the
parent (the hub) exits however it exits; it survives ``exec``. If the hub is
already gone when we get here, we exit instead of running unsupervised.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import signal
import sys

PR_SET_PDEATHSIG = 1


def set_parent_death_signal(sig: int = signal.SIGTERM) -> bool:
    """Linux only; False where prctl is unavailable."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        return int(libc.prctl(PR_SET_PDEATHSIG, sig, 0, 0, 0)) == 0
    except (OSError, AttributeError):
        return False


def main(argv: list[str]) -> int:
    if not argv:
        print("usage: python -m labfleet.up.die_with_parent CMD [ARGS...]", file=sys.stderr)
        return 2
    parent = os.getppid()
    set_parent_death_signal()
    if os.getppid() != parent or parent == 1:
        return 1  # the parent died before the signal was armed
    os.execvp(argv[0], argv)  # noqa: S606 - exec the service as given, no shell
    return 127  # pragma: no cover - execvp does not return


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
