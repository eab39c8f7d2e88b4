"""Routing through a real labfleet-proxy process to real backends (CHP semantics)."""

from __future__ import annotations

import json
from collections.abc import Iterator

import httpx
import pytest

from .conftest import Backend, Proxy, raw_exchange


def get(proxy: Proxy, path: str, **kw: object) -> httpx.Response:
    return httpx.get(proxy.url + path, timeout=10, **kw)  # type: ignore[arg-type]


def server_of(r: httpx.Response) -> str:
    assert r.status_code == 200, (r.status_code, r.text[:300])
    return str(r.json()["server"])


def test_longest_prefix_on_segment_boundaries(proxy: Proxy) -> None:
    assert server_of(get(proxy, "/user/alice/lab")) == "alice"
    assert server_of(get(proxy, "/user/alice")) == "alice"
    assert server_of(get(proxy, "/user/bob/api/x")) == "bob"
    assert server_of(get(proxy, "/user/alicex/")) == "hub"
    assert server_of(get(proxy, "/user/")) == "hub"
    assert server_of(get(proxy, "/")) == "hub"


def test_prefix_and_query_are_kept(proxy: Proxy) -> None:
    r = get(proxy, "/user/alice/api/contents?type=file&x=%2F")
    assert r.json()["uri"] == "/user/alice/api/contents?type=file&x=%2F"


def test_routing_uses_decoded_segments_and_forwards_raw(proxy: Proxy) -> None:
    r = get(proxy, "/user/ali%63e/tree")
    assert server_of(r) == "alice"
    assert r.json()["uri"] == "/user/ali%63e/tree"


def test_x_forwarded_headers(proxy: Proxy) -> None:
    r = get(proxy, "/user/alice/", headers={"X-Forwarded-For": "203.0.113.9"})
    headers = {k.lower(): v for k, v in r.json()["headers"]}
    # the client is not a trusted proxy: its claim is replaced by the socket peer
    assert headers["x-forwarded-for"] == "127.0.0.1"
    assert headers["x-real-ip"] == "127.0.0.1"
    assert headers["x-forwarded-proto"] == "http"
    assert headers["x-forwarded-port"] == str(proxy.port)
    assert headers["x-forwarded-host"] == f"127.0.0.1:{proxy.port}"
    assert headers["host"] == f"127.0.0.1:{proxy.port}"  # origin kept, as in CHP


@pytest.mark.parametrize(
    "path",
    [
        "/user/alice%2F..%2Fbob/api/contents",
        "/user/alice%2f..%2fbob/",
        "/user/alice%2Fbob/",
        "/user/ALICE/",
        "/user/alice%40x/",
        "/user/alice\\..\\bob/",
        "//user/bob/",
        "/user//bob/",
    ],
)
def test_encoded_tricks_never_reach_bob(proxy: Proxy, path: str) -> None:
    """BAD_INPUTS 44: these go to the hub (or 400), never to bob's server."""
    raw = raw_exchange(
        proxy.port,
        f"GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode(),
    )
    assert b'"server": "bob"' not in raw
    assert raw.startswith((b"HTTP/1.1 200", b"HTTP/1.1 400"))
    if raw.startswith(b"HTTP/1.1 200"):
        assert b'"server": "hub"' in raw


def test_encoded_traversal_inside_alice_stays_with_alice(proxy: Proxy) -> None:
    r = get(proxy, "/user/alice/..%2Fbob/")
    assert server_of(r) == "alice"


@pytest.mark.parametrize(
    "path",
    [
        "/user/bob/../alice/",
        "/user/bob/%2e%2e/alice/",
        "/user/bob/%2E%2e/alice/",
        "/user/bob/./x",
        "/user/bob/%2e/x",
        "/user/%2e%2e/user/bob/",
        "/user/al%00ice/",
        "/user/al%ffice/",
    ],
)
def test_dot_segments_and_bad_encodings_are_refused(proxy: Proxy, path: str) -> None:
    raw = raw_exchange(proxy.port, f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
    assert raw.startswith(b"HTTP/1.1 400"), raw[:200]
    assert b'"server"' not in raw


def test_user_with_at_sign_route(proxy: Proxy, backends: dict[str, Backend]) -> None:
    proxy.add("/user/carol@x.org", backends["alice"].url)  # JupyterHub keeps '@' unescaped
    try:
        assert server_of(get(proxy, "/user/carol%40x.org/api")) == "alice"
        assert server_of(get(proxy, "/user/carol@x.org/api")) == "alice"
    finally:
        proxy.api("DELETE", "/user/carol@x.org")


def test_absolute_form_matching_host_is_routed(proxy: Proxy) -> None:
    host = f"127.0.0.1:{proxy.port}"
    raw = raw_exchange(
        proxy.port,
        f"GET http://{host}/user/alice/abs HTTP/1.1\r\nHost: {host}\r\n"
        "Connection: close\r\n\r\n".encode(),
    )
    assert raw.startswith(b"HTTP/1.1 200")
    body = json.loads(raw.split(b"\r\n\r\n", 1)[1])
    assert body["server"] == "alice" and body["uri"] == "/user/alice/abs"


@pytest.mark.parametrize(
    "target",
    ["http://evil.example/user/bob/", "http://user@127.0.0.1/user/bob/", "ftp://x/user/bob/", "*"],
)
def test_absolute_form_not_matching_is_refused(proxy: Proxy, target: str) -> None:
    raw = raw_exchange(
        proxy.port,
        f"GET {target} HTTP/1.1\r\nHost: 127.0.0.1:{proxy.port}\r\n\r\n".encode(),
    )
    assert raw.startswith(b"HTTP/1.1 400"), raw[:100]


@pytest.fixture(scope="module")
def host_proxy(backends: dict[str, Backend]) -> Iterator[Proxy]:
    p = Proxy("--host-routing")
    p.add("/", backends["hub"].url)
    p.add("/alice.hub.example/user/alice", backends["alice"].url)
    p.add("/bob.hub.example/user/bob", backends["bob"].url)
    yield p
    p.stop()


def test_host_routing_uses_the_real_host_only(host_proxy: Proxy) -> None:
    """BAD_INPUTS 45: Host picks the route; X-Forwarded-Host cannot."""

    def via(host: str, path: str, **headers: str) -> str:
        return server_of(get(host_proxy, path, headers={"Host": host, **headers}))

    assert via("alice.hub.example", "/user/alice/") == "alice"
    assert via("ALICE.hub.example:8443", "/user/alice/lab") == "alice"
    assert via("bob.hub.example", "/user/alice/") == "hub"
    assert (
        via("bob.hub.example", "/user/alice/", **{"X-Forwarded-Host": "alice.hub.example"}) == "hub"
    )
    assert via("hub.example", "/user/bob/") == "hub"
    r = host_proxy.api("GET")
    assert r.json()["/alice.hub.example/user/alice"]["host"] == "alice.hub.example"


def test_malformed_host_header_is_refused(host_proxy: Proxy) -> None:
    raw = raw_exchange(
        host_proxy.port, b"GET /user/bob/ HTTP/1.1\r\nHost: bob.hub.example/user\r\n\r\n"
    )
    assert raw.startswith(b"HTTP/1.1 400")


def test_default_target_and_404(backends: dict[str, Backend]) -> None:
    p = Proxy("--default-target", backends["bob"].url)
    q = Proxy()
    try:
        assert server_of(get(p, "/anything")) == "bob"
        raw = raw_exchange(
            q.port,
            b"GET /nothing/<script>alert(1)</script> HTTP/1.1\r\n"
            b"Host: x\r\nConnection: close\r\n\r\n",
        )
        assert raw.startswith(b"HTTP/1.1 404")
        assert b"<script>" not in raw and b"&lt;script&gt;" in raw
    finally:
        p.stop()
        q.stop()


def test_no_include_prefix_and_target_path(backends: dict[str, Backend]) -> None:
    p = Proxy("--no-include-prefix")
    try:
        p.add("/user/alice", backends["alice"].url + "/base")
        r = get(p, "/user/alice/api/x?q=1")
        assert r.json()["uri"] == "/base/api/x?q=1"
    finally:
        p.stop()


def test_health_endpoint(proxy: Proxy) -> None:
    r = get(proxy, "/_chp_healthz")
    assert r.status_code == 200 and r.json() == {"status": "OK"}
