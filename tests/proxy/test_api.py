"""CHP's REST API on a real labfleet-proxy: auth, CRUD, activity, metrics."""

from __future__ import annotations

import socket
import time

import httpx
import pytest

from .conftest import TOKEN, Backend, Proxy, raw_exchange


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "token wrong"},
        {"Authorization": f"token {TOKEN}x"},
        {"Authorization": f"token {TOKEN[:-1]}"},
        {"Authorization": f"Bearer {TOKEN}"},
        {"Authorization": f"token  {TOKEN}"},
        {"Authorization": TOKEN},
        {"Authorization": "token"},
    ],
)
def test_api_refuses_without_the_exact_token(proxy: Proxy, headers: dict[str, str]) -> None:
    """BAD_INPUTS 43."""
    for method in ("GET", "POST", "DELETE"):
        r = proxy.api(method, "/user/mallory", {"target": "http://127.0.0.1:1"}, headers=headers)
        assert r.status_code == 403
    assert proxy.api("GET", "/user/mallory").status_code == 404  # nothing was added


def test_api_refuses_trailing_whitespace_and_duplicate_headers(proxy: Proxy) -> None:
    for auth in (
        f"Authorization: token {TOKEN} \r\n",
        f"Authorization: token {TOKEN}\t\r\n",
        f"Authorization: token {TOKEN}\r\nAuthorization: token {TOKEN}\r\n",
    ):
        raw = raw_exchange(
            proxy.api_port,
            f"GET /api/routes HTTP/1.1\r\nHost: x\r\n{auth}Connection: close\r\n\r\n".encode(),
        )
        assert raw.startswith(b"HTTP/1.1 403"), (auth, raw[:80])


def test_metrics_need_the_token(proxy: Proxy) -> None:
    assert httpx.get(proxy.api_url + "/metrics").status_code == 403
    r = httpx.get(proxy.api_url + "/metrics", headers={"Authorization": f"token {TOKEN}"})
    assert r.status_code == 200
    assert "labfleet_proxy_requests_total" in r.text


def test_refuses_to_start_without_token() -> None:
    p = Proxy(token=None, wait=False)
    assert p.proc.wait(30) == 1
    assert "CONFIGPROXY_AUTH_TOKEN" in p.stop()
    p = Proxy(token="", wait=False)
    assert p.proc.wait(30) == 1


def test_crud_like_chp(proxy: Proxy, backends: dict[str, Backend]) -> None:
    data = {"user": "dave", "server_name": "", "jupyterhub": True}
    proxy.add("/user/dave/", backends["alice"].url, **data)
    try:
        r = proxy.api("GET", "/user/dave")
        assert r.status_code == 200
        route = r.json()
        assert route["target"] == backends["alice"].url
        assert {k: route[k] for k in data} == data
        assert route["last_activity"].endswith("Z")
        all_routes = proxy.api("GET").json()
        assert "/user/dave" in all_routes and "/" in all_routes
        # replacing keeps one route
        proxy.add("/user/dave", backends["bob"].url, **data)
        assert proxy.api("GET", "/user/dave").json()["target"] == backends["bob"].url
        assert httpx.get(proxy.url + "/user/dave/x").json()["server"] == "bob"
    finally:
        assert proxy.api("DELETE", "/user/dave").status_code == 204
    assert proxy.api("DELETE", "/user/dave").status_code == 404
    assert proxy.api("GET", "/user/dave").status_code == 404
    assert httpx.get(proxy.url + "/user/dave/x").json()["server"] == "hub"


@pytest.mark.parametrize(
    ("body", "status"),
    [
        (b"not json", 400),
        (b"[1]", 400),
        (b'{"target": 5}', 400),
        (b"{}", 400),
        (b'{"target": "gopher://x"}', 400),
    ],
)
def test_post_validation(proxy: Proxy, body: bytes, status: int) -> None:
    r = httpx.post(
        proxy.api_url + "/api/routes/user/bad",
        content=body,
        headers={"Authorization": f"token {TOKEN}"},
    )
    assert r.status_code == status
    assert proxy.api("GET", "/user/bad").status_code == 404


def test_api_rejects_dot_segments(proxy: Proxy) -> None:
    r = proxy.api("POST", "/user/%2e%2e/x", {"target": "http://127.0.0.1:1"})
    assert r.status_code == 400


def test_unknown_api_path_and_method(proxy: Proxy) -> None:
    h = {"Authorization": f"token {TOKEN}"}
    assert httpx.get(proxy.api_url + "/api/other", headers=h).status_code == 404
    assert httpx.put(proxy.api_url + "/api/routes/x", headers=h).status_code == 405


def test_last_activity_and_inactive_since(proxy: Proxy, backends: dict[str, Backend]) -> None:
    proxy.add("/user/erin", backends["alice"].url)
    proxy.add("/user/frank", backends["bob"].url)
    try:
        time.sleep(0.01)  # frank's timestamp must be strictly older than erin's traffic
        before = proxy.api("GET", "/user/erin").json()["last_activity"]
        cutoff = before
        # make sure the clock moved past the millisecond the route was added
        while proxy.api("GET", "/user/erin").json()["last_activity"] == before:
            time.sleep(0.01)
            assert httpx.get(proxy.url + "/user/erin/x").status_code == 200
        after = proxy.api("GET", "/user/erin").json()["last_activity"]
        assert after > before
        # frank had no traffic since it was added; erin had
        inactive = proxy.api("GET", params={"inactive_since": after}).json()
        assert "/user/frank" in inactive and "/user/erin" not in inactive
        assert proxy.api("GET", params={"inactive_since": cutoff}).status_code == 200
        bad = proxy.api("GET", params={"inactive_since": "yesterday"})
        assert bad.status_code == 400
    finally:
        proxy.api("DELETE", "/user/erin")
        proxy.api("DELETE", "/user/frank")


def test_error_responses_do_not_count_as_activity(
    proxy: Proxy, backends: dict[str, Backend]
) -> None:
    proxy.add("/user/gina", backends["alice"].url)
    try:
        before = proxy.api("GET", "/user/gina").json()["last_activity"]
        time.sleep(0.01)
        assert httpx.get(proxy.url + "/user/gina/status/404").status_code == 404
        assert proxy.api("GET", "/user/gina").json()["last_activity"] == before
    finally:
        proxy.api("DELETE", "/user/gina")


def test_metrics_count_requests_and_bytes(proxy: Proxy) -> None:
    h = {"Authorization": f"token {TOKEN}"}
    httpx.post(proxy.url + "/user/bob/upload", content=b"x" * 1000)
    text = httpx.get(proxy.api_url + "/metrics", headers=h).text
    lines = dict(
        line.rsplit(" ", 1) for line in text.splitlines() if line and not line.startswith("#")
    )
    assert float(lines["labfleet_proxy_requests_total"]) >= 1
    assert float(lines['labfleet_proxy_bytes_total{direction="in"}']) >= 1000
    assert float(lines['labfleet_proxy_bytes_total{direction="out"}']) > 0
    assert not any("route=" in name for name in lines)  # no per-user labels
    assert "labfleet_proxy_active_connections" in lines


def test_api_over_unix_socket(tmp_path: object, backends: dict[str, Backend]) -> None:
    import pathlib

    sock_path = str(pathlib.Path(str(tmp_path)) / "api.sock")
    p = Proxy("--api-socket", sock_path, wait=False)
    try:
        from .conftest import wait_port

        wait_port(p.port, p.proc)
        deadline = time.monotonic() + 30
        while not pathlib.Path(sock_path).exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        transport = httpx.HTTPTransport(uds=sock_path)
        with httpx.Client(transport=transport, base_url="http://proxy") as c:
            r = c.post(
                "/api/routes/user/u",
                json={"target": backends["alice"].url},
                headers={"Authorization": f"token {TOKEN}"},
            )
            assert r.status_code == 201
        assert httpx.get(p.url + "/user/u/").json()["server"] == "alice"
    finally:
        p.stop()
    with socket.socket() as s:  # the public port was released on stop
        s.bind(("127.0.0.1", p.port))


def test_public_unix_socket(tmp_path: object, backends: dict[str, Backend]) -> None:
    """JupyterHub's ``http+unix://`` public URL becomes ``--socket PATH``."""
    import pathlib

    from .conftest import wait_port

    sock_path = str(pathlib.Path(str(tmp_path)) / "public.sock")
    p = Proxy("--socket", sock_path, wait=False)
    try:
        wait_port(p.api_port, p.proc)
        p.add("/user/alice", backends["alice"].url)
        deadline = time.monotonic() + 30
        while not pathlib.Path(sock_path).exists():
            assert time.monotonic() < deadline
            time.sleep(0.05)
        transport = httpx.HTTPTransport(uds=sock_path)
        with httpx.Client(transport=transport, base_url="http://proxy") as c:
            r = c.get("/user/alice/over-unix")
        assert r.json()["server"] == "alice"
        assert r.json()["uri"] == "/user/alice/over-unix"
    finally:
        p.stop()
