"""A real JupyterHub with labfleet's GitHubAuthenticator against GitHubDouble (a test double).

Covers the OAuth flow (state checked), org allow-list, deny-list, org/team →
groups, admin groups, UID/GIDs in auth_state, and git settings in the lab.
"""

from __future__ import annotations

import json
import secrets
import sys
import time
from collections.abc import Iterator

import httpx
import pytest
from github_double import CLIENT_ID, CLIENT_SECRET, GitHubDouble, GitHubUser
from hubrunner import HERE, RunningHub, merge, run_hub

from labfleet.auth.github_identity import git_environment, posix_identity
from labfleet.auth.settings import build_auth_settings
from labfleet.config.auth import AuthSection
from labfleet.runtime import Runtime

pytestmark = pytest.mark.integration

USERS = [
    GitHubUser(
        "alice",
        5001,
        name="Alice A",
        primary_email="alice@acme.example",
        orgs=[("acme", 7001), ("other", 7002), ("third", 7003)],
        teams=[("acme", "ml")],
    ),
    GitHubUser("bob", 5002, orgs=[("acme", 7001), ("EvilCorp", 7100)]),
    GitHubUser("carol", 5003, orgs=[("random", 7200)]),
    GitHubUser("dave", 5004, orgs=[("acme", 7001)], teams=[("acme", "admins")]),
    GitHubUser("lowid", 7, orgs=[("acme", 7001)]),
    GitHubUser("Mallory-X", 5006, email="m@x.example", orgs=[("acme", 7001)]),
]


@pytest.fixture(scope="module")
def github() -> Iterator[GitHubDouble]:
    with GitHubDouble(USERS).running() as double:
        yield double


@pytest.fixture(scope="module")
def hub(tmp_path_factory: pytest.TempPathFactory, github: GitHubDouble) -> Iterator[RunningHub]:
    tmp = tmp_path_factory.mktemp("github-hub")
    auth = AuthSection.model_validate(
        {
            "kind": "github",
            "github": {
                "client_id": CLIENT_ID,
                "client_secret": "env:LABFLEET_TEST_GITHUB_SECRET",
                "url": github.url,
                "allowed_organizations": ["acme"],
                "denied_organizations": ["evilcorp"],
                "uid_from_id": True,
                "gids_from_orgs": True,
            },
            "admin_groups": ["acme:admins"],
        }
    )
    settings = merge(
        build_auth_settings(auth, Runtime(data_dir=tmp)),
        {
            "JupyterHub": {"spawner_class": "jupyterhub.spawner.SimpleLocalProcessSpawner"},
            "SimpleLocalProcessSpawner": {
                "cmd": [sys.executable, str(HERE / "tiny_server.py")],
                "home_dir_template": str(tmp / "homes" / "{username}"),
            },
        },
    )
    env = {
        "LABFLEET_TEST_GITHUB_SECRET": CLIENT_SECRET,
        "JUPYTERHUB_CRYPT_KEY": secrets.token_hex(32),
    }
    with run_hub(tmp / "hub", settings, env=env) as running:
        yield running


def _sign_in(
    hub: RunningHub, github: GitHubDouble, login: str
) -> tuple[httpx.Response, httpx.Client]:
    """Browser steps: hub → GitHub authorize → hub callback (redirects followed by hand)."""
    github.next_login = login
    client = httpx.Client(base_url=hub.url, timeout=30)
    start = client.get("/hub/oauth_login")
    assert start.status_code == 302
    assert start.headers["location"].startswith(f"{github.url}/login/oauth/authorize")
    authorize = httpx.get(start.headers["location"], timeout=30)
    assert authorize.status_code == 302
    return client.get(authorize.headers["location"]), client


def _user(hub: RunningHub, name: str) -> dict[str, object]:
    with hub.api() as api:
        response = api.get(f"/users/{name}")
        response.raise_for_status()
        return dict(response.json())


def test_org_member_signs_in_with_groups_ids_and_git(hub: RunningHub, github: GitHubDouble) -> None:
    callback, client = _sign_in(hub, github, "alice")
    client.close()
    assert callback.status_code == 302, callback.text
    user = _user(hub, "alice")
    assert sorted(user["groups"]) == ["acme", "acme:ml", "other", "third"]  # type: ignore[arg-type]
    assert user["admin"] is False
    state = user["auth_state"]
    assert isinstance(state, dict)
    identity = posix_identity(state)
    assert identity is not None and identity.uid == 5001
    assert identity.gids == (7001, 7002, 7003)  # all pages of /user/orgs
    env = git_environment(state, github.url)
    assert env["GIT_AUTHOR_NAME"] == "Alice A"
    assert env["GIT_AUTHOR_EMAIL"] == "alice@acme.example"  # private, from /user/emails


def test_lab_gets_git_settings(hub: RunningHub, github: GitHubDouble) -> None:
    _sign_in(hub, github, "alice")[1].close()
    with hub.api() as api:
        assert api.post("/users/alice/server").status_code in (201, 202)
        deadline = time.monotonic() + 60
        while not (api.get("/users/alice").json()["servers"].get("") or {}).get("ready"):
            assert time.monotonic() < deadline
            time.sleep(0.2)
        token = api.get("/users/alice").json()["auth_state"]["access_token"]
        api.delete("/users/alice/server")
    recorded = json.loads((hub.data_dir.parent / "homes" / "alice" / "server-env.json").read_text())
    assert recorded["GIT_COMMITTER_EMAIL"] == "alice@acme.example"
    assert recorded["GITHUB_TOKEN"] == token
    assert recorded["GIT_CONFIG_KEY_0"] == f"credential.{github.url}.helper"


def test_deny_list_wins_over_the_allow_list(hub: RunningHub, github: GitHubDouble) -> None:
    callback, client = _sign_in(hub, github, "bob")
    assert callback.status_code == 403
    assert "evilcorp" in callback.text.lower()
    assert "jupyterhub-session-id" not in client.cookies
    client.close()


def test_non_member_is_refused(hub: RunningHub, github: GitHubDouble) -> None:
    callback, client = _sign_in(hub, github, "carol")
    client.close()
    assert callback.status_code == 403


def test_team_grants_admin(hub: RunningHub, github: GitHubDouble) -> None:
    callback, client = _sign_in(hub, github, "dave")
    client.close()
    assert callback.status_code == 302
    assert _user(hub, "dave")["admin"] is True


def test_unmappable_uid_is_refused(hub: RunningHub, github: GitHubDouble) -> None:
    callback, client = _sign_in(hub, github, "lowid")
    client.close()
    assert callback.status_code == 403
    assert "user id" in callback.text


def test_login_is_normalised(hub: RunningHub, github: GitHubDouble) -> None:
    callback, client = _sign_in(hub, github, "Mallory-X")
    client.close()
    assert callback.status_code == 302
    assert _user(hub, "mallory-x")["name"] == "mallory-x"


def test_wrong_state_is_refused(hub: RunningHub, github: GitHubDouble) -> None:
    github.next_login = "alice"
    with httpx.Client(base_url=hub.url, timeout=30) as client:
        start = client.get("/hub/oauth_login")
        authorize = httpx.get(start.headers["location"], timeout=30)
        forged = authorize.headers["location"].replace("state=", "state=x")
        response = client.get(forged)
        assert response.status_code == 400
        assert "jupyterhub-session-id" not in client.cookies


def test_callback_without_state_cookie_is_refused(hub: RunningHub, github: GitHubDouble) -> None:
    github.next_login = "alice"
    with httpx.Client(base_url=hub.url, timeout=30) as client:
        start = client.get("/hub/oauth_login")
        authorize = httpx.get(start.headers["location"], timeout=30)
    with httpx.Client(timeout=30) as other_browser:
        assert other_browser.get(authorize.headers["location"]).status_code == 400


def test_log_has_no_tokens(hub: RunningHub, github: GitHubDouble) -> None:
    log = hub.log()
    assert CLIENT_SECRET not in log
    for token in github.tokens:
        assert token not in log
