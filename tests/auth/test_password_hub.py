"""A real JupyterHub with labfleet's PasswordAuthenticator: form login, failures, lock-outs.

Settings come from build_auth_settings (the production translation); the
accounts are created with the real CLI against the same data directory.
"""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from hubrunner import RunningHub, login_form, run_hub

from labfleet.auth.settings import build_auth_settings
from labfleet.config.auth import AuthSection
from labfleet.runtime import Runtime

pytestmark = pytest.mark.integration

PASSWORD = "correct horse battery"
MAX_FAILURES = 3
MAX_FAILURES_PER_IP = 8


def _cli(data_dir: Path, *args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "labfleet.cli.main", "users", *args, "--data-dir", str(data_dir)],
        input=stdin,
        capture_output=True,
        text=True,
        check=False,
    )


@pytest.fixture(scope="module")
def hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningHub]:
    tmp = tmp_path_factory.mktemp("password-hub")
    data_dir = tmp / "data"
    for name, admin in (("Alice", True), ("bob", False), ("carol", False), ("dave", False)):
        flags = ["--admin"] if admin else []
        result = _cli(data_dir, "add", name, *flags, "--password-stdin", stdin=PASSWORD + "\n")
        assert result.returncode == 0, result.stderr
    auth = AuthSection.model_validate(
        {
            "kind": "password",
            "password": {
                "max_failures": MAX_FAILURES,
                "max_failures_per_ip": MAX_FAILURES_PER_IP,
                "lockout": 600,
            },
        }
    )
    settings = build_auth_settings(auth, Runtime(data_dir=data_dir))
    # Production hash cost, so unknown users cost the same work as known ones.
    with run_hub(tmp / "hub", settings) as running:
        yield running


def _client(hub: RunningHub, address: str) -> httpx.Client:
    """A browser-like client; X-Forwarded-For gives each test its own client address
    (the hub trusts it the way it trusts the proxy in front of it)."""
    return httpx.Client(base_url=hub.url, headers={"X-Forwarded-For": address}, timeout=30)


def _normalised_body(response: httpx.Response, username: str) -> str:
    body = response.text.replace(username, "USERNAME")
    return re.sub(r'name="_xsrf" value="[^"]*"', "XSRF", body)


def test_login_with_form_and_xsrf_gives_a_session(hub: RunningHub) -> None:
    with _client(hub, "10.0.0.1") as client:
        response = login_form(client, "ALICE ", PASSWORD)
        assert response.status_code == 302, response.text
        assert "jupyterhub-session-id" in client.cookies
        home = client.get("/hub/home")
        assert home.status_code == 200
        assert "alice" in home.text
    with hub.api() as api:
        assert api.get("/users/alice").json()["admin"] is True


def test_wrong_password_is_refused(hub: RunningHub) -> None:
    with _client(hub, "10.0.0.2") as client:
        response = login_form(client, "bob", "wrong password")
        assert response.status_code == 403
        assert "Invalid username or password" in response.text
        assert "jupyterhub-session-id" not in client.cookies


def test_post_without_xsrf_is_refused(hub: RunningHub) -> None:
    with _client(hub, "10.0.0.3") as client:
        client.get("/hub/login")
        response = client.post("/hub/login", data={"username": "bob", "password": PASSWORD})
        assert response.status_code == 403
        assert "jupyterhub-session-id" not in client.cookies


def test_unknown_user_gets_the_same_answer_as_a_wrong_password(hub: RunningHub) -> None:
    with _client(hub, "10.0.0.4") as client:
        known = login_form(client, "carol", "wrong password")
        unknown = login_form(client, "nobody", "wrong password")
        invalid = login_form(client, "../x", "wrong password")
    assert known.status_code == unknown.status_code == invalid.status_code == 403
    assert _normalised_body(known, "carol") == _normalised_body(unknown, "nobody")
    assert _normalised_body(known, "carol") == _normalised_body(invalid, "../x")


def test_a_locked_out_attacker_never_locks_out_the_right_password_elsewhere(
    hub: RunningHub,
) -> None:
    """Issue 10 item 6: 20+ wrong passwords from A; dave's password from B still works."""
    with _client(hub, "10.0.0.5") as attacker:
        answers = [login_form(attacker, "dave", "wrong password").status_code for _ in range(21)]
        assert answers[:MAX_FAILURES] == [403] * MAX_FAILURES
        assert set(answers[MAX_FAILURES:]) == {429}  # the attacker is locked out
        locked = login_form(attacker, "dave", PASSWORD)  # even with the right password
        assert locked.status_code == 429
        assert "Too many failed sign-in attempts" in locked.text
        # An unknown name locks the same way: the lock-out reveals nothing.
    with _client(hub, "10.0.0.15") as other:
        for _ in range(MAX_FAILURES):
            login_form(other, "ghost", "wrong password")
        assert login_form(other, "ghost", "anything").status_code == 429
    with _client(hub, "10.0.0.6") as owner:  # another address: dave gets in
        response = login_form(owner, "dave", PASSWORD)
        assert response.status_code == 302
        assert "jupyterhub-session-id" in owner.cookies


def test_a_spoofed_header_from_an_untrusted_peer_is_ignored(tmp_path: Path) -> None:
    """X-Real-Ip counts only from a trusted hop; otherwise the socket peer is the key."""
    from types import SimpleNamespace

    from labfleet.auth.client_address import client_address, parse_networks

    trusted = parse_networks(["10.1.0.0/16"])
    context = SimpleNamespace(_orig_remote_ip="192.0.2.7", address=("192.0.2.7", 5000))
    request = SimpleNamespace(
        connection=SimpleNamespace(context=context),
        remote_ip="203.0.113.9",
        headers={"X-Real-Ip": "203.0.113.9", "X-Forwarded-For": "198.51.100.1"},
    )
    assert client_address(request, trusted) == "192.0.2.7"
    context._orig_remote_ip = "10.1.2.3"
    assert client_address(request, trusted) == "203.0.113.9"
    request.headers = {"X-Forwarded-For": "198.51.100.1, 198.51.100.2"}
    assert client_address(request, trusted) == "198.51.100.2"
    request.headers = {"X-Real-Ip": "not an address"}
    assert client_address(request, trusted) == "10.1.2.3"


def test_address_lockout_after_spraying_names(hub: RunningHub) -> None:
    with _client(hub, "10.0.0.7") as client:
        for index in range(MAX_FAILURES_PER_IP):
            assert login_form(client, f"spray{index}", "guess").status_code == 403
        # bob's password is right, but this address is locked out.
        assert login_form(client, "bob", PASSWORD).status_code == 429
        assert login_form(client, "spray0", "guess").status_code == 429
    with _client(hub, "10.0.0.8") as client:
        assert login_form(client, "bob", PASSWORD).status_code == 302


def test_cli_changes_apply_to_the_running_hub(hub: RunningHub) -> None:
    data_dir = hub.data_dir.parent / "data"
    new_password = "a brand new secret"
    assert _cli(data_dir, "passwd", "carol", "--password-stdin", stdin=new_password).returncode == 0
    with _client(hub, "10.0.0.9") as client:
        assert login_form(client, "carol", new_password).status_code == 302
    assert _cli(data_dir, "remove", "carol").returncode == 0
    with _client(hub, "10.0.0.10") as client:
        assert login_form(client, "carol", new_password).status_code == 403


def test_log_has_no_passwords(hub: RunningHub) -> None:
    log = hub.log()
    assert PASSWORD not in log
    assert "wrong password" not in log


@pytest.mark.parametrize("name", ["-rf", "../x", "a b", "a\nb", "\u0430lice", "x" * 200])
def test_admin_api_refuses_hostile_names(hub: RunningHub, name: str) -> None:
    with hub.api() as api:
        response = api.post("/users", json={"usernames": [name]})
        assert response.status_code == 400, response.text
        assert all(user["name"] != name for user in api.get("/users").json())


def test_admin_api_normalises_names(hub: RunningHub) -> None:
    with hub.api() as api:
        response = api.post("/users", json={"usernames": ["Erin "]})
        assert response.status_code == 201
        assert [user["name"] for user in response.json()] == ["erin"]
