"""Taking access away takes it away, at once (issue 10 items 2-4), on a running platform.

A real ``labfleet up`` (hub, labfleet-proxy, real servers). Each member signs
in through the login form (a browser cookie), mints an API token and starts a
server; then the admin acts with the CLI, and the *next* request with the old
cookie or token must be refused. ``isolation: none`` keeps these tests from
creating system accounts; the access rules do not depend on it.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Iterator

import httpx
import pytest

from tests.integration.conftest import write_config
from tests.support.client import HubUser
from tests.support.platform import Platform, labfleet

pytestmark = pytest.mark.integration

PASSWORD = "correct horse battery staple"
NEW_PASSWORD = "another long secret phrase"
_RUN = secrets.token_hex(2)


def name(base: str) -> str:
    return f"{base}{_RUN}"


def add(platform: Platform, who: str, *flags: str, password: str = PASSWORD) -> None:
    result = labfleet(
        "users",
        "add",
        who,
        *flags,
        "--password-stdin",
        input=password + "\n",
        data_dir=platform.data_dir,
    )
    assert result.returncode == 0, result.stderr


def users(platform: Platform, *args: str, stdin: str | None = None) -> str:
    result = labfleet("users", *args, input=stdin, data_dir=platform.data_dir)
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


@pytest.fixture(scope="module")
def platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Platform]:
    base = tmp_path_factory.mktemp("access")
    config = write_config(
        base / "labfleet.yaml", "culling: {enabled: false}\nlocal: {isolation: none}\n"
    )
    started = Platform(data_dir=base / "data", config=config)
    add(started, name("root"), "--admin")
    started.start()
    try:
        yield started
    finally:
        started.stop()


def signed_in(platform: Platform, who: str, password: str = PASSWORD) -> HubUser:
    user = HubUser(platform.url, who)
    response = user.login(password)
    assert response.status_code == 200 and "/hub/home" in str(response.url), response.text[:300]
    return user


def with_token(platform: Platform, token: str, path: str) -> httpx.Response:
    return httpx.get(
        f"{platform.url}/hub/api{path}", headers={"Authorization": f"token {token}"}, timeout=30
    )


def cookie_works(user: HubUser) -> bool:
    return user.api("GET", "/user").status_code == 200


def token_works(platform: Platform, token: str) -> bool:
    return with_token(platform, token, "/user").status_code == 200


def open_server_in_browser(user: HubUser) -> None:
    """Visit the server like a browser: OAuth with the hub, then the server's own cookie."""
    landed = user.http.get(user.server_url("lab"))
    assert landed.status_code == 200 and f"/user/{user.name}/" in str(landed.url), landed.url


def server_cookie_works(user: HubUser) -> bool:
    """Does the browser's cookie still open the member's server (not bounced to the hub)?"""
    response = user.http.get(user.server_url("api/contents"))
    return response.status_code == 200 and f"/user/{user.name}/" in str(response.url)


def running_member(platform: Platform, who: str, *flags: str) -> tuple[HubUser, str]:
    add(platform, who, *flags)
    user = signed_in(platform, who)
    token = user.new_token()
    assert user.start_server().status_code in (201, 202)
    user.wait_ready()
    return user, token


def test_remove_ends_cookie_token_and_server_and_a_readded_name_gets_nothing_old(
    platform: Platform,
) -> None:
    who = name("bob")
    user, token = running_member(platform, who)
    assert user.contents_put(token, "secret.txt", "bob's secret").status_code in (200, 201)
    assert cookie_works(user) and token_works(platform, token)
    open_server_in_browser(user)
    assert server_cookie_works(user)

    out = users(platform, "remove", who)
    assert "removed" in out

    assert user.api("GET", "/user").status_code in (401, 403)
    assert with_token(platform, token, "/user").status_code in (401, 403)
    assert user.contents_get(token, "secret.txt").status_code != 200
    assert not server_cookie_works(user)
    assert not (platform.data_dir / "homes" / who).exists()
    archived = list((platform.data_dir / "homes" / ".removed").glob(f"{who}.removed-*"))
    assert len(archived) == 1 and (archived[0] / "secret.txt").exists()

    # the same name again: a new person, none of the old tokens, cookies or files
    add(platform, who, password=NEW_PASSWORD)
    assert user.api("GET", "/user").status_code in (401, 403)
    assert with_token(platform, token, "/user").status_code in (401, 403)
    newcomer = signed_in(platform, who, NEW_PASSWORD)
    new_token = newcomer.new_token()
    assert newcomer.start_server().status_code in (201, 202)
    newcomer.wait_ready()
    assert newcomer.contents_get(new_token, "secret.txt").status_code == 404
    assert user.contents_get(token, "secret.txt").status_code != 200
    newcomer.stop_server()
    newcomer.wait_stopped()


def test_revoking_admin_applies_to_the_next_request(platform: Platform) -> None:
    who, victim = name("carol"), name("vic")
    add(platform, victim)
    add(platform, who, "--admin")
    admin = signed_in(platform, who)
    token = admin.new_token()
    assert with_token(platform, token, "/users").status_code == 200

    users(platform, "admin", who, "--revoke")

    assert with_token(platform, token, "/users").status_code == 403
    assert admin.api("GET", "/users").status_code == 403
    minted = httpx.post(
        f"{platform.url}/hub/api/users/{victim}/tokens",
        headers={"Authorization": f"token {token}"},
        json={"note": "stolen"},
        timeout=30,
    )
    assert minted.status_code in (403, 404)
    assert token_works(platform, token)  # still a member, only not an admin

    users(platform, "admin", who)  # granting applies at once too
    assert with_token(platform, token, "/users").status_code == 200


def test_passwd_ends_sessions_and_tokens_by_default(platform: Platform) -> None:
    who = name("dave")
    user, token = running_member(platform, who)
    open_server_in_browser(user)
    assert server_cookie_works(user)
    users(platform, "passwd", who, "--password-stdin", stdin=NEW_PASSWORD + "\n")
    assert not server_cookie_works(user)
    assert not cookie_works(user)
    assert not token_works(platform, token)
    assert user.contents_get(token, "").status_code != 200
    again = signed_in(platform, who, NEW_PASSWORD)
    assert cookie_works(again)
    kept = again.new_token()
    users(platform, "passwd", who, "--keep-sessions", "--password-stdin", stdin=PASSWORD + "\n")
    assert cookie_works(again) and token_works(platform, kept)
    users(platform, "passwd", who, "--logout", "--password-stdin", stdin=NEW_PASSWORD + "\n")
    assert not cookie_works(again) and not token_works(platform, kept)


def test_admin_page_delete_follows_the_same_rules(platform: Platform) -> None:
    who = name("frank")
    user, token = running_member(platform, who)
    root = signed_in(platform, name("root"))
    # what the admin page's "Delete user" sends
    assert root.api("DELETE", f"/users/{who}").status_code == 204
    assert not cookie_works(user) and not token_works(platform, token)
    listing = users(platform, "list")
    assert who not in listing.split()
    assert HubUser(platform.url, who).login(PASSWORD).status_code == 403


def accounts_form(admin: HubUser, **fields: str) -> httpx.Response:
    """A POST to /hub/accounts as the admin's browser sends it."""
    admin.http.get("/hub/accounts")
    return admin.http.post("/hub/accounts", data={"_xsrf": admin.xsrf(), **fields})


def test_admin_page_add_user_makes_an_account_completed_with_a_link(platform: Platform) -> None:
    who = name("ivy")
    root = signed_in(platform, name("root"))
    added = root.api("POST", "/users", json={"usernames": [who]})
    assert added.status_code == 201, added.text
    listing = users(platform, "list")
    assert f"{who}\tuser\tno password yet" in listing
    assert HubUser(platform.url, who).login("").status_code == 403
    assert HubUser(platform.url, who).login("!").status_code == 403
    page = accounts_form(root, action="link", name=who)
    assert page.status_code == 200
    match = re.search(r'value="(http[^"]*/hub/set-password/[^"]+)"', page.text)
    assert match, page.text[:2000]
    token = match.group(1).rsplit("/", 1)[1]
    setter = HubUser(platform.url, who)
    setter.http.get(f"/hub/set-password/{token}")
    done = setter.http.post(
        f"/hub/set-password/{token}",
        data={"_xsrf": setter.xsrf(), "password": PASSWORD, "confirm": PASSWORD},
    )
    assert done.status_code == 200 and "password-set" in done.text
    assert cookie_works(signed_in(platform, who))


def test_admin_page_admin_toggle_is_kept_in_the_account(platform: Platform) -> None:
    who = name("jo")
    add(platform, who, "--admin")
    assert signed_in(platform, who).api("GET", "/users").status_code == 200
    root = signed_in(platform, name("root"))
    assert root.api("PATCH", f"/users/{who}", json={"admin": False}).status_code == 200
    assert f"{who}\tuser" in users(platform, "list")
    member = signed_in(platform, who)  # the next login does not make them admin again
    assert member.api("GET", "/users").status_code == 403


def test_admin_reset_ends_sessions_and_the_old_password(platform: Platform) -> None:
    who = name("kim")
    user, token = running_member(platform, who)
    root = signed_in(platform, name("root"))
    page = accounts_form(root, action="reset", name=who)
    assert page.status_code == 200 and "/hub/set-password/" in page.text
    assert not cookie_works(user) and not token_works(platform, token)
    assert HubUser(platform.url, who).login(PASSWORD).status_code == 403


def test_changes_made_while_stopped_apply_at_the_next_start(platform: Platform) -> None:
    gone, demoted, logged_out = name("erin"), name("gil"), name("hal")
    add(platform, gone)
    add(platform, demoted, "--admin")
    add(platform, logged_out)
    clients = {who: signed_in(platform, who) for who in (gone, demoted, logged_out)}
    tokens = {who: clients[who].new_token() for who in clients}
    platform.stop()
    try:
        users(platform, "remove", gone)
        users(platform, "admin", demoted, "--revoke")
        users(platform, "passwd", logged_out, "--password-stdin", stdin=NEW_PASSWORD + "\n")
    finally:
        platform.start()
    for who in (gone, logged_out):
        assert not cookie_works(clients[who]), who
        assert not token_works(platform, tokens[who]), who
    assert with_token(platform, tokens[demoted], "/users").status_code == 403
    assert token_works(platform, tokens[demoted])
