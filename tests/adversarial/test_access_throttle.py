"""The login throttle as a hostile client meets it, through labfleet-proxy (issue 10 item 6).

Clients connect from different loopback source addresses (127.0.0.2, .3, ...),
so the proxy sees distinct socket peers exactly as it would see distinct
machines. A locked-out attacker, even one rotating ``X-Real-Ip`` and
``X-Forwarded-For``, never locks out the owner's correct password from
another address, and a flood of wrong passwords for many accounts from one
address locks only that address.
"""

from __future__ import annotations

import json
import os
import pwd
import secrets
import socket
import time
from collections.abc import Iterator

import httpx
import pytest

from tests.support.members import Member, platform_with_members
from tests.support.platform import Platform

pytestmark = pytest.mark.integration

PASSWORD = "correct horse battery staple"
_RUN = secrets.token_hex(2)
OWNER = f"tara{_RUN}"
OTHER = f"uma{_RUN}"


@pytest.fixture(scope="module")
def platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Platform]:
    with platform_with_members(
        tmp_path_factory.mktemp("throttle"),
        "culling: {enabled: false}\nlocal: {isolation: none}\n",
        [Member(OWNER, PASSWORD), Member(OTHER, PASSWORD)],
    ) as started:
        yield started


def client_from(platform: Platform, source: str) -> httpx.Client:
    transport = httpx.HTTPTransport(local_address=source)
    return httpx.Client(base_url=platform.url, transport=transport, timeout=60)


def attempt(client: httpx.Client, name: str, password: str, spoof: str | None = None) -> int:
    client.get("/hub/login")
    headers = {"X-Real-Ip": spoof, "X-Forwarded-For": spoof} if spoof else {}
    response = client.post(
        "/hub/login?next=%2Fhub%2Fhome",
        data={"username": name, "password": password, "_xsrf": client.cookies.get("_xsrf") or ""},
        headers=headers,
    )
    return response.status_code


def test_a_locked_out_attacker_does_not_lock_out_the_owner(platform: Platform) -> None:
    with client_from(platform, "127.0.0.2") as attacker:
        answers = [
            attempt(attacker, OWNER, f"guess {index}", spoof=f"10.9.{index}.1")
            for index in range(25)
        ]
    assert answers[-1] == 429, answers  # rotating headers did not give it fresh buckets
    with client_from(platform, "127.0.0.3") as owner:
        assert attempt(owner, OWNER, PASSWORD) == 302


def test_a_flood_for_many_accounts_locks_only_the_flooding_address(platform: Platform) -> None:
    with client_from(platform, "127.0.0.4") as flooder:
        answers = [attempt(flooder, f"name{index}", "guess") for index in range(30)]
        assert answers[-1] == 429, answers
        assert attempt(flooder, OTHER, PASSWORD) == 429
    with client_from(platform, "127.0.0.5") as member:
        assert attempt(member, OTHER, PASSWORD) == 302


def _forged_request_as(uid: int, port: int, forged: str) -> None:
    """From a child that dropped to ``uid`` (a member's kernel), dial the hub's port directly."""
    pid = os.fork()
    if pid == 0:  # pragma: no cover - child
        code = 1
        try:
            os.setgid(uid)
            os.setuid(uid)
            with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
                sock.sendall(
                    f"GET /hub/login HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Real-Ip: {forged}\r\n"
                    f"X-Forwarded-For: {forged}\r\nConnection: close\r\n\r\n".encode()
                )
                while sock.recv(65536):
                    pass
            code = 0
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0


@pytest.mark.root
def test_a_kernel_dialling_the_hub_cannot_forge_its_address_in_the_request_log(
    platform: Platform,
) -> None:
    """Issue 10: the hub's request log names the socket's address, not a member's header."""
    if os.geteuid() != 0:
        pytest.skip("needs root to act as another system user")
    nobody = pwd.getpwnam("nobody").pw_uid
    record = json.loads((platform.data_dir / "state" / "platform.json").read_text())
    forged = "203.0.113.77"
    _forged_request_as(nobody, int(record["hub_port"]), forged)
    with client_from(platform, "127.0.0.5") as member:  # through the proxy: its address is kept
        member.get("/hub/login?from=proxy")
    hub_log = platform.data_dir / "logs" / "hub.log"
    deadline = time.monotonic() + 10
    while "GET /hub/login" not in hub_log.read_text() and time.monotonic() < deadline:
        time.sleep(0.1)
    text = hub_log.read_text()
    assert forged not in text, [line for line in text.splitlines() if forged in line]
    assert "@127.0.0.1)" in text
    assert any("from=proxy" in line and "@127.0.0.5)" in line for line in text.splitlines())
