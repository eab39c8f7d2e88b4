"""A socket option as another process holds it: read through ``pidfd_getfd`` (Linux ≥ 5.6).

What a server sets on its own sockets (TCP_NODELAY) cannot be seen from the
client's end, and timing it would be a timing assertion. A copy of the
server's file descriptor, taken with ``pidfd_getfd`` (the test runs as the
server's owner or root), answers ``getsockopt`` exactly as the server's does.
"""

from __future__ import annotations

import ctypes
import os
import socket

SYS_PIDFD_GETFD = 438  # the same number on x86_64 and arm64 (the generic syscall table)


def _copy_fd(pid: int, fd: int) -> int:
    libc = ctypes.CDLL(None, use_errno=True)
    pidfd = os.pidfd_open(pid)
    try:
        copy = libc.syscall(SYS_PIDFD_GETFD, pidfd, fd, 0)
        if copy < 0:
            err = ctypes.get_errno()
            raise OSError(err, f"pidfd_getfd({pid}, {fd}): {os.strerror(err)}")
        return int(copy)
    finally:
        os.close(pidfd)


def peer_socket_option(pid: int, peer: tuple[str, int], level: int, option: int) -> int:
    """``getsockopt`` on process ``pid``'s TCP socket whose remote end is ``peer``."""
    for name in os.listdir(f"/proc/{pid}/fd"):
        try:
            if not os.readlink(f"/proc/{pid}/fd/{name}").startswith("socket:"):
                continue
        except OSError:
            continue
        sock = socket.socket(fileno=_copy_fd(pid, int(name)))
        try:
            if sock.family not in (socket.AF_INET, socket.AF_INET6):
                continue
            try:
                remote = sock.getpeername()[:2]
            except OSError:  # a listening socket
                continue
            if remote == peer:
                return sock.getsockopt(level, option)
        finally:
            sock.close()
    raise LookupError(f"process {pid} has no socket connected to {peer}")
