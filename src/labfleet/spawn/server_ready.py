"""The server's half of event-driven readiness: tell the hub "I am up" over a pipe.

The hub opens a pipe per launch and hands the write end to the new server as
an inherited file descriptor named by ``LABFLEET_READY_FD`` (an exec passes it
through, the fork-server child receives it over its socket). This module is a
jupyter_server extension, enabled by :func:`server_args`:

* when extensions load (before the HTTP server binds) it writes ``L``: the hub
  now knows a ``R`` will follow, so it stops considering a port poll;
* once the event loop runs (``_start_jupyter_server_extension``: the socket is
  bound and requests are being served) it writes ``R`` and closes the pipe.

If the server dies first, the kernel closes the pipe and the hub sees end of
file at once: no polling either way. Stdlib only: it is imported in every
user's server, whose environment may be a copy of labfleet or none at all (then
jupyter_server skips the extension and the hub falls back to its port poll).
"""

from __future__ import annotations

import contextlib
import os
from typing import Any

READY_FD_ENV = "LABFLEET_READY_FD"
LOADED, READY = b"L", b"R"
EXTENSION = "labfleet.spawn.server_ready"

_fd: list[int] = []  # the pipe, taken from the environment at load


def server_args() -> list[str]:
    """Arguments that enable this extension in a server (a no-op without the fd)."""
    return [f"--ServerApp.jpserver_extensions={EXTENSION}=True"]


def _take_fd(environ: dict[str, str] | os._Environ[str]) -> int | None:
    """The pipe's fd, removed from the environment so kernels never see a stale number."""
    raw = environ.pop(READY_FD_ENV, "")
    try:
        fd = int(raw)
    except ValueError:
        return None
    try:
        os.set_inheritable(fd, False)  # kernels and terminals do not hold the hub's pipe
    except OSError:
        return None
    return fd


def _write(data: bytes) -> None:
    if _fd:
        with contextlib.suppress(OSError):  # the hub gave up on us: nothing to tell
            os.write(_fd[0], data)


def _jupyter_server_extension_points() -> list[dict[str, str]]:
    return [{"module": EXTENSION}]


def _load_jupyter_server_extension(serverapp: Any) -> None:
    fd = _take_fd(os.environ)
    if fd is not None:
        _fd[:] = [fd]
        _write(LOADED)


async def _start_jupyter_server_extension(serverapp: Any) -> None:
    """Runs in the server's event loop after the HTTP server has bound its socket."""
    _write(READY)
    if _fd:
        with contextlib.suppress(OSError):
            os.close(_fd.pop())
