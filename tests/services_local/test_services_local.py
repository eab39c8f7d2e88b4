"""``services:`` on one machine: a real application behind the hub's login (issue 13).

``labfleet up`` with two entries of ``services:`` running ``echo_app.py`` (a plain
HTTP server that knows nothing of JupyterHub). Everything is real: the hub starts
each gate as a managed service, the gate starts the application, labfleet-proxy
routes ``/services/NAME/``, and sign-in is the hub's OAuth. The application is
reached through the proxy only after login, sees the member's name but none of the
hub's cookies, an admin-only entry refuses a member, and a cross-site POST is refused.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.client import HubUser
from tests.support.members import Member, platform_with_members
from tests.support.platform import Platform, free_port

pytestmark = pytest.mark.integration

PASSWORD = "correct horse battery staple"
APP = Path(__file__).with_name("echo_app.py")
WS_APP = Path(__file__).with_name("ws_app.py")


@pytest.fixture(scope="module")
def platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Platform]:
    hello, secret, ws = free_port(), free_port(), free_port()
    config = (
        "culling: {enabled: false}\n"
        "dashboard: {enabled: false}\n"
        "local: {isolation: none}\n"  # isolation is not what these tests are about
        "services:\n"
        f"  - name: hello\n    command: [{sys.executable}, {APP}, '{hello}']\n"
        f"    port: {hello}\n    url_prefix: /app/\n    environment: {{GREETING: hi}}\n"
        f"  - name: ops\n    command: [{sys.executable}, {APP}, '{secret}']\n"
        f"    port: {secret}\n    admin_only: true\n"
        f"  - name: live\n    command: [{sys.executable}, {WS_APP}, '{ws}']\n    port: {ws}\n"
    )
    members = [Member("alice", PASSWORD), Member("boss", PASSWORD, admin=True)]
    with platform_with_members(tmp_path_factory.mktemp("services"), config, members) as running:
        yield running


def _signed_in(platform: Platform, name: str) -> HubUser:
    user = HubUser(platform.url, name)
    assert user.login(PASSWORD).status_code == 200
    return user


def _get(user: HubUser, path: str) -> httpx.Response:
    """GET through the proxy; the gate may still be starting right after the hub is up."""
    for _ in range(60):
        response = user.http.get(path)
        if response.status_code != 502:
            return response
        time.sleep(0.5)
    return response


def _echo(response: httpx.Response) -> dict[str, Any]:
    assert response.status_code == 200, (response.status_code, response.text[:500])
    data: dict[str, Any] = json.loads(response.text)
    return data


def test_not_signed_in_is_sent_to_the_hub_login(platform: Platform) -> None:
    first = httpx.get(f"{platform.url}/services/hello/", follow_redirects=False, timeout=30)
    for _ in range(60):  # 502 while the gate starts
        if first.status_code != 502:
            break
        time.sleep(0.5)
        first = httpx.get(f"{platform.url}/services/hello/", follow_redirects=False, timeout=30)
    assert first.status_code in (302, 303), first.status_code
    final = httpx.get(f"{platform.url}/services/hello/x", follow_redirects=True, timeout=30)
    assert "/hub/login" in str(final.url)
    assert "greeting" not in final.text  # the application never answered


def test_a_member_reaches_the_application_through_the_proxy(platform: Platform) -> None:
    user = _signed_in(platform, "alice")
    try:
        echo = _echo(_get(user, "/services/hello/some/page?x=1"))
        assert echo["path"] == "/app/some/page?x=1"  # url_prefix: the app's own base path
        assert echo["user"] == "alice"
        assert echo["greeting"] == "hi" and echo["prefix"] == "/app/"
        # none of the hub's or the gate's cookies, and no token, reach the application
        assert echo["cookie"] is None and echo["authorization"] is None
        # a redirect of the application comes back under /services/hello/
        moved = user.http.get("/services/hello/go-home", follow_redirects=False)
        assert moved.status_code == 302
        assert moved.headers["location"] == "/services/hello/home"
        big = user.http.get("/services/hello/big")
        assert big.status_code == 200 and big.content == bytes(range(256)) * 4096 * 3
        assert big.headers["content-type"] == "application/octet-stream"
        # a same-origin POST goes through; a cross-site one is refused
        posted = _echo(user.http.post("/services/hello/form", content=b"a=1"))
        assert posted["method"] == "POST" and posted["body"] == "a=1"
        forged = user.http.post(
            "/services/hello/form", content=b"a=2", headers={"Origin": "https://evil.example"}
        )
        assert forged.status_code == 403
    finally:
        user.close()


def test_admin_only_refuses_a_member_and_admits_an_admin(platform: Platform) -> None:
    member = _signed_in(platform, "alice")
    admin = _signed_in(platform, "boss")
    try:
        refused = _get(member, "/services/ops/")
        assert refused.status_code == 403, refused.status_code
        assert "greeting" not in refused.text
        assert _echo(_get(admin, "/services/ops/"))["user"] == "boss"
    finally:
        member.close()
        admin.close()


def test_a_websocket_is_relayed_only_after_sign_in(platform: Platform) -> None:
    from websockets.exceptions import InvalidStatus
    from websockets.sync.client import connect

    url = f"ws://127.0.0.1:{platform.port}/services/live/feed"
    with pytest.raises(InvalidStatus):  # no hub session: the handshake is refused
        connect(url, open_timeout=30).close()
    user = _signed_in(platform, "alice")
    try:
        _get(user, "/services/live/")  # the OAuth round trip sets the gate's cookie
        cookie = "; ".join(f"{c.name}={c.value}" for c in user.http.cookies.jar)
        origin = f"http://127.0.0.1:{platform.port}"
        headers = {"Cookie": cookie}
        with connect(url, additional_headers=headers, origin=origin, open_timeout=30) as ws:
            ws.send("ping")
            assert ws.recv(timeout=30) == "/services/live/feed|alice|None|ping"
        with pytest.raises(InvalidStatus):  # a page of another site may not open it
            connect(url, additional_headers=headers, origin="https://evil.example").close()
    finally:
        user.close()


def test_the_services_are_listed_by_the_hub(platform: Platform) -> None:
    admin = _signed_in(platform, "boss")
    try:
        listed = admin.api("GET", "/services")
        assert listed.status_code == 200
        names = (
            {s["name"] for s in listed.json().values()}
            if isinstance(listed.json(), dict)
            else {s["name"] for s in listed.json()}
        )
        assert {"hello", "ops"} <= names
    finally:
        admin.close()
