"""The login throttle as a hostile client meets it, through labfleet-proxy (issue 10 item 6).

Clients connect from different loopback source addresses (127.0.0.2, .3, ...),
so the proxy sees distinct socket peers exactly as it would see distinct
machines. A locked-out attacker, even one rotating ``X-Real-Ip`` and
``X-Forwarded-For``, never locks out the owner's correct password from
another address, and a flood of wrong passwords for many accounts from one
address locks only that address.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator

import httpx
import pytest

from tests.integration.conftest import write_config
from tests.support.platform import Platform, labfleet

pytestmark = pytest.mark.integration

PASSWORD = "correct horse battery staple"
_RUN = secrets.token_hex(2)
OWNER = f"tara{_RUN}"
OTHER = f"uma{_RUN}"


@pytest.fixture(scope="module")
def platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Platform]:
    base = tmp_path_factory.mktemp("throttle")
    config = write_config(
        base / "labfleet.yaml", "culling: {enabled: false}\nlocal: {isolation: none}\n"
    )
    started = Platform(data_dir=base / "data", config=config)
    for who in (OWNER, OTHER):
        result = labfleet(
            "users",
            "add",
            who,
            "--password-stdin",
            input=PASSWORD + "\n",
            data_dir=started.data_dir,
        )
        assert result.returncode == 0, result.stderr
    started.start()
    try:
        yield started
    finally:
        started.stop()


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
