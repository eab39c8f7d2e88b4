"""Which address the login throttle keys on: a header only from the proxy's own user.

Real loopback sockets: one made by this process (the hub's user, like the
proxy) and one made by a child that dropped to ``nobody`` (like an isolated
member's kernel dialling the hub port directly with a forged ``X-Real-Ip``).
"""

from __future__ import annotations

import ipaddress
import os
import pwd
import socket
from collections.abc import Iterator
from types import SimpleNamespace

import pytest

from labfleet.auth.client_address import (
    DEFAULT_TRUSTED_HOPS,
    client_address,
    parse_networks,
    socket_owner_uid,
)

TRUSTED = parse_networks(DEFAULT_TRUSTED_HOPS)


def _request(peer: tuple[str, int], headers: dict[str, str]) -> SimpleNamespace:
    context = SimpleNamespace(_orig_remote_ip=peer[0], address=peer)
    return SimpleNamespace(connection=SimpleNamespace(context=context), headers=headers)


def _accept_from(
    listener: socket.socket, uid: int | None
) -> tuple[socket.socket, tuple[str, int], int]:
    """Connect to ``listener`` from a child (as ``uid``): the accepted end, peer, child pid."""
    pid = os.fork()
    if pid == 0:  # the child: drop privileges, connect, wait to be told to go
        try:
            if uid is not None:
                os.setgid(uid)
                os.setuid(uid)
            client = socket.socket()  # no name lookup: codecs may be unreadable now
            client.connect(listener.getsockname())
            client.recv(1)
        finally:
            os._exit(0)
    conn, peer = listener.accept()
    return conn, peer, pid


@pytest.fixture
def listener() -> Iterator[socket.socket]:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(4)
    sock.settimeout(30)
    yield sock
    sock.close()


def test_the_hubs_own_user_is_a_trusted_hop(listener: socket.socket) -> None:
    conn, peer, pid = _accept_from(listener, None)
    try:
        assert socket_owner_uid(ipaddress.ip_address(peer[0]), peer[1]) == os.getuid()
        request = _request(peer, {"X-Real-Ip": "198.51.100.7"})
        assert client_address(request, TRUSTED) == "198.51.100.7"
    finally:
        conn.sendall(b"x")
        conn.close()
        os.waitpid(pid, 0)


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to connect as another user")
def test_another_users_loopback_socket_cannot_forge_the_address(listener: socket.socket) -> None:
    nobody = pwd.getpwnam("nobody").pw_uid
    conn, peer, pid = _accept_from(listener, nobody)
    try:
        assert socket_owner_uid(ipaddress.ip_address(peer[0]), peer[1]) == nobody
        request = _request(peer, {"X-Real-Ip": "198.51.100.7", "X-Forwarded-For": "198.51.100.8"})
        assert client_address(request, TRUSTED) == "127.0.0.1"
    finally:
        conn.sendall(b"x")
        conn.close()
        os.waitpid(pid, 0)


def test_untrusted_networks_and_garbage_headers() -> None:
    request = _request(("192.0.2.9", 4000), {"X-Real-Ip": "198.51.100.7"})
    assert client_address(request, TRUSTED) == "192.0.2.9"
    request = _request(("10.1.2.3", 4000), {"X-Real-Ip": "<script>"})
    assert client_address(request, parse_networks(["10.0.0.0/8"])) == "10.1.2.3"
