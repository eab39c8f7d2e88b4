"""Attack cases from ../shared/BAD_INPUTS.md against the running embedded platform.

One platform serves the whole module (starting one costs seconds); each test
uses its own user so they do not interfere.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote, urlsplit

import httpx
import pytest

from tests.integration.conftest import write_config
from tests.integration.test_embedded_flow import PASSWORD, add_user
from tests.support.client import HubUser
from tests.support.platform import Platform

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Platform]:
    root = tmp_path_factory.mktemp("bad-inputs")
    config = write_config(
        root / "labfleet.yaml",
        "culling: {enabled: false}\nprofiles:\n"
        "- {slug: standard, display_name: Standard, default: true}\n"
        "- {slug: gpu, display_name: GPU, admin_only: true}\n",
    )
    p = Platform(data_dir=root / "data", config=config).start()
    for name in ("mallory", "victim", "xss"):
        add_user(p.data_dir, name)
    yield p
    p.stop()


@pytest.fixture
def mallory(platform: Platform) -> Iterator[HubUser]:
    user = HubUser(platform.url, "mallory")
    assert user.login(PASSWORD).status_code == 200
    yield user
    user.close()


def assert_same_origin(location: str) -> None:
    """A redirect target a browser resolves on the hub's own origin."""
    parts = urlsplit(location)
    assert not parts.scheme and not parts.netloc, location
    assert location.startswith("/") and not location.startswith(("//", "/\\")), location
    assert "\\" not in location, location


def _no_follow(user: HubUser) -> httpx.Client:
    return httpx.Client(base_url=user.base_url, cookies=user.http.cookies, timeout=30)


@pytest.mark.parametrize(
    "target",
    [
        "https://evil.example/",
        "//evil.example",
        "///evil.example/x",
        "\\\\evil.example/x",
        "/\\evil.example",
        "https:evil.example",
        "javascript:alert(1)",
    ],
)
def test_login_next_never_leaves_the_hub(mallory: HubUser, target: str) -> None:
    # BAD_INPUTS 1-2: logged in, /hub/login?next=<external> redirects to the default URL
    with _no_follow(mallory) as http:
        resp = http.get(f"/hub/login?next={quote(target, safe='')}")
    assert resp.status_code in (200, 302, 303)
    assert_same_origin(resp.headers.get("location", "/"))


def test_login_next_keeps_query_and_fragment(mallory: HubUser) -> None:
    # BAD_INPUTS 4: `://` inside query or fragment of a local URL is preserved
    target = "/hub/home?repo=https://host.git#frag=https://x"
    with _no_follow(mallory) as http:
        resp = http.get(f"/hub/login?next={quote(target, safe='')}")
    assert resp.headers["location"] == target


@pytest.mark.parametrize(
    "path", ["/hub/user-redirect//evil.example/", "/hub/user-redirect/%2F%2Fevil.example"]
)
def test_user_redirect_stays_on_origin(mallory: HubUser, path: str) -> None:
    # BAD_INPUTS 6
    with _no_follow(mallory) as http:
        resp = http.get(path)
    assert_same_origin(resp.headers.get("location", "/"))


def test_oauth_authorize_with_foreign_redirect_uri_is_refused(mallory: HubUser) -> None:
    # BAD_INPUTS 7: exact redirect_uri match, no redirect to an attacker
    with _no_follow(mallory) as http:
        resp = http.get(
            "/hub/api/oauth2/authorize",
            params={
                "client_id": "jupyterhub-user-mallory",
                "redirect_uri": "https://evil/",
                "response_type": "code",
            },
        )
    assert resp.status_code >= 400
    assert "evil" not in resp.headers.get("location", "")


@pytest.mark.parametrize(
    "headers",
    [
        {"Sec-Fetch-Mode": "no-cors", "Sec-Fetch-Site": "cross-site"},
        {"Sec-Fetch-Mode": "navigate"},
        {},
    ],
)
def test_cross_site_spawn_without_xsrf_is_refused(mallory: HubUser, headers) -> None:
    # BAD_INPUTS 16 and 18: POST /hub/spawn with the cookie but no _xsrf → 403, nothing spawned
    with _no_follow(mallory) as http:
        resp = http.post("/hub/spawn", data={}, headers=headers)
    assert resp.status_code == 403
    assert not mallory.server_model()


def test_cookie_api_call_without_xsrf_header_is_refused(mallory: HubUser) -> None:
    # BAD_INPUTS 20: cookie-authenticated API POST without X-XSRFToken → 403
    with _no_follow(mallory) as http:
        resp = http.post("/hub/api/users/mallory/server", json={})
    assert resp.status_code == 403


def test_non_admin_cannot_grant_itself_admin(mallory: HubUser) -> None:
    # BAD_INPUTS 24
    assert mallory.api("PATCH", "/users/mallory", json={"admin": True}).status_code == 403
    assert mallory.api("POST", "/users/new", json={"admin": True}).status_code == 403


def test_user_cannot_start_or_read_someone_else(mallory: HubUser) -> None:
    assert mallory.api("POST", "/users/victim/server", json={}).status_code in (403, 404)
    assert mallory.api("GET", "/users/victim").status_code in (403, 404)


@pytest.mark.parametrize("name", ["../x", "a/b", "A B", "x\U0001f427", "x" * 31, "-x"])
def test_hostile_server_names_are_refused(platform: Platform, name: str) -> None:
    # BAD_INPUTS 39 (named servers are off by default: refused either way, never created)
    user = HubUser(platform.url, "victim")
    user.login(PASSWORD)
    resp = user.api("POST", f"/users/victim/servers/{quote(name, safe='')}", json={})
    assert resp.status_code in (400, 404), resp.text
    user.close()


def test_escaped_username_on_pages(platform: Platform) -> None:
    # BAD_INPUTS 11 (variant): an HTML-ish username is refused by the account store
    from tests.support.platform import labfleet

    result = labfleet(
        "users", "add", "x<'&\">", "--password-stdin", input=PASSWORD, data_dir=platform.data_dir
    )
    assert result.returncode == 2


def test_logs_never_hold_secrets(platform: Platform, mallory: HubUser) -> None:
    # BAD_INPUTS 49: no cookie, Authorization or token values in the logs
    token = mallory.new_token()
    httpx.get(f"{platform.url}/hub/api/user", headers={"Authorization": f"token {token}"})
    httpx.get(f"{platform.url}/hub/api/user?token={token}")
    log = platform.log()
    secrets_dir = platform.data_dir / "secrets"
    for value in [token, PASSWORD, *(p.read_text().strip() for p in secrets_dir.iterdir())]:
        assert value not in log
    session = mallory.http.cookies.get("jupyterhub-session-id")
    assert session and session not in log


def test_error_pages_have_no_traceback(platform: Platform) -> None:
    resp = httpx.get(f"{platform.url}/hub/api/users/%ff%fe")
    assert "Traceback" not in resp.text


def test_data_dir_is_private(platform: Platform) -> None:
    data: Path = platform.data_dir
    assert (data / "secrets").stat().st_mode & 0o077 == 0
    assert (data / "accounts.sqlite").stat().st_mode & 0o077 == 0


@pytest.mark.parametrize(
    "options",
    [
        {"profile": "gpu"},
        {"profile": "nope"},
        {"profile": "standard\n"},
        {"profile": "standard", "image": "evil.registry/x:y"},
    ],
)
def test_forbidden_profile_through_rest_is_403_and_not_sticky(
    mallory: HubUser, options: dict[str, str]
) -> None:
    # BAD_INPUTS 56 and issue 5: refused through the REST API with a reason, nothing started,
    # and the refused options are not reused by the next plain start
    resp = mallory.start_server(options)
    assert resp.status_code == 403, resp.text
    assert resp.json().get("message")
    assert not mallory.server_model()
    assert mallory.start_server().status_code in (201, 202)
    mallory.wait_ready()
    mallory.stop_server()
    mallory.wait_stopped()
