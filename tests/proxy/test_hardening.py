"""The front door under hostile or unlucky traffic (issue 12, issue 10 item 6).

Each test here failed on the proxy before its fix: replayed POSTs, leaked
hop-by-hop headers, trusted client-sent forwarding headers, an exhaustible
pool, the head limit skipped for a head sent in one write, usernames in
metrics, and websockets that could stay idle forever.
"""

from __future__ import annotations

import base64
import json
import os
import socket
import time

import httpx
import pytest

from .conftest import TOKEN, Backend, Proxy, raw_exchange, read_response
from .rawserver import RawServer


def _headers(r: httpx.Response) -> dict[str, str]:
    return {k.lower(): v for k, v in r.json()["headers"]}


def _metric(p: Proxy, name: str) -> float:
    text = httpx.get(p.api_url + "/metrics", headers={"Authorization": f"token {TOKEN}"}).text
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    raise AssertionError(f"{name} missing")


# -- RFC 9110 §9.2.2: never replay a non-idempotent request -------------------


def _answer_first_then_drop(conn: socket.socket, srv: RawServer) -> None:
    """Answers the first request of a connection; reads the second, then drops it."""
    buf = bytearray()
    first = True
    while True:
        if srv.read_request(conn, buf) is None:
            return
        if not first:
            return  # the request was received (and maybe acted on), no answer
        first = False
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")


def test_post_is_never_replayed_when_a_pooled_connection_drops(proxy: Proxy) -> None:
    srv = RawServer(_answer_first_then_drop)
    proxy.add("/user/post", srv.url)
    try:
        with httpx.Client(timeout=30) as c:
            statuses = [
                c.post(proxy.url + "/user/post/x", content=f"order-{i}".encode()).status_code
                for i in range(4)
            ]
        bodies = [r.split(b"\r\n\r\n", 1)[1] for r in srv.requests]
        for i in range(4):
            assert bodies.count(f"order-{i}".encode()) == 1, (bodies, statuses)
        assert statuses[0] == 200
        assert 502 in statuses or 503 in statuses  # a dropped POST is reported, not replayed
    finally:
        proxy.api("DELETE", "/user/post")
        srv.close()


def test_idempotent_request_is_still_retried_on_a_stale_connection(proxy: Proxy) -> None:
    srv = RawServer(_answer_first_then_drop)
    proxy.add("/user/put", srv.url)
    try:
        with httpx.Client(timeout=30) as c:
            for _ in range(3):
                r = c.put(proxy.url + "/user/put/x", content=b"same")
                assert (r.status_code, r.text) == (200, "ok")
    finally:
        proxy.api("DELETE", "/user/put")
        srv.close()


# -- hop-by-hop headers --------------------------------------------------------


def test_hop_by_hop_request_headers_are_stripped(proxy: Proxy) -> None:
    raw = raw_exchange(
        proxy.port,
        b"GET /user/alice/hop HTTP/1.1\r\nHost: x\r\n"
        b"Connection: keep-alive, X-Secret, close\r\nX-Secret: internal\r\n"
        b"Keep-Alive: timeout=5\r\nTE: trailers\r\nTrailer: X-T\r\n"
        b"Proxy-Authorization: Basic YTpi\r\nProxy-Connection: keep-alive\r\n"
        b"Upgrade: h2c\r\nX-Kept: yes\r\n\r\n",
    )
    assert raw.startswith(b"HTTP/1.1 200"), raw[:200]
    body = json.loads(raw.split(b"\r\n\r\n", 1)[1])
    names = {k.lower() for k, _ in body["headers"]}
    assert "x-kept" in names
    leaked = names & {
        "x-secret",
        "keep-alive",
        "te",
        "trailer",
        "proxy-authorization",
        "proxy-connection",
        "upgrade",
    }
    assert not leaked
    connection = [v for k, v in body["headers"] if k.lower() == "connection"]
    assert all("x-secret" not in v.lower() for v in connection)


def _hop_response(conn: socket.socket, srv: RawServer) -> None:
    buf = bytearray()
    while srv.read_request(conn, buf) is not None:
        conn.sendall(
            b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: X-Internal\r\n"
            b"X-Internal: backend-secret\r\nKeep-Alive: timeout=5\r\n"
            b"Proxy-Connection: keep-alive\r\nX-Public: yes\r\n\r\nok"
        )


def test_hop_by_hop_response_headers_are_stripped(proxy: Proxy) -> None:
    srv = RawServer(_hop_response)
    proxy.add("/user/hop", srv.url)
    try:
        r = httpx.get(proxy.url + "/user/hop/x", timeout=30)
        assert (r.status_code, r.text) == (200, "ok")
        assert r.headers["x-public"] == "yes"
        for name in ("x-internal", "keep-alive", "proxy-connection"):
            assert name not in r.headers
        assert "x-internal" not in r.headers.get("connection", "").lower()
    finally:
        proxy.api("DELETE", "/user/hop")
        srv.close()


def test_websocket_upgrade_still_passes_connection_upgrade(proxy: Proxy) -> None:
    key = base64.b64encode(os.urandom(16))
    with socket.create_connection(("127.0.0.1", proxy.port), timeout=30) as s:
        s.sendall(
            b"GET /user/alice/ws HTTP/1.1\r\nHost: x\r\nConnection: Upgrade, X-Drop\r\n"
            b"Upgrade: websocket\r\nX-Drop: 1\r\nSec-WebSocket-Version: 13\r\n"
            b"Sec-WebSocket-Key: " + key + b"\r\n\r\n"
        )
        status, headers, _ = read_response(s)
    assert status == 101
    assert headers["upgrade"].lower() == "websocket"


# -- forwarding headers: trusted hops only -------------------------------------

_SPOOF = {
    "X-Real-Ip": "6.6.6.6",
    "X-Forwarded-For": "6.6.6.6",
    "X-Forwarded-Proto": "https",
    "X-Forwarded-Host": "evil.example",
    "X-Forwarded-Port": "1",
    "X-Scheme": "https",
}


def test_spoofed_forwarding_headers_from_an_untrusted_peer_never_reach_the_target(
    proxy: Proxy,
) -> None:
    r = httpx.get(proxy.url + "/user/alice/who", headers=_SPOOF, timeout=30)
    h = _headers(r)
    assert h["x-real-ip"] == "127.0.0.1"
    assert h["x-forwarded-for"] == "127.0.0.1"
    assert h["x-forwarded-proto"] == "http"
    assert h["x-forwarded-host"] == f"127.0.0.1:{proxy.port}"
    assert h["x-forwarded-port"] == str(proxy.port)
    assert h.get("x-scheme", "http") == "http"
    assert "6.6.6.6" not in json.dumps(r.json()["headers"])


def test_forwarding_headers_from_a_trusted_hop_are_kept(backends: dict[str, Backend]) -> None:
    p = Proxy("--trusted-proxy", "10.0.0.0/8", "--trusted-proxy", "127.0.0.1/32")
    try:
        p.add("/user/alice", backends["alice"].url)
        h = _headers(httpx.get(p.url + "/user/alice/who", headers=_SPOOF, timeout=30))
        assert h["x-real-ip"] == "6.6.6.6"
        assert h["x-forwarded-for"] == "6.6.6.6,127.0.0.1"
        assert h["x-forwarded-proto"] == "https"
        assert h["x-forwarded-host"] == "evil.example"
        # a trusted hop that names no client: the proxy says who it saw
        h = _headers(httpx.get(p.url + "/user/alice/who", timeout=30))
        assert h["x-real-ip"] == "127.0.0.1"
    finally:
        p.stop()


def test_bad_trusted_proxy_option_refuses_to_start() -> None:
    p = Proxy("--trusted-proxy", "not-a-network", wait=False)
    try:
        assert p.proc.wait(30) == 2
    finally:
        if p.proc.poll() is None:  # (the old proxy ignored the option and kept running)
            p.proc.kill()
            p.proc.wait()


# -- head limit ------------------------------------------------------------------


def test_oversized_head_sent_in_one_write_is_431(proxy: Proxy) -> None:
    head = b"GET /user/alice/ HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 100_000 + b"\r\n\r\n"
    raw = raw_exchange(proxy.port, head)
    assert raw.startswith(b"HTTP/1.1 431"), raw[:100]
    assert b'"server"' not in raw


# -- pool exhaustion and slowloris -------------------------------------------------


def test_slow_body_clients_cannot_starve_the_pool(backends: dict[str, Backend]) -> None:
    p = Proxy("--max-connections-per-target", "2", "--body-timeout", "1000")
    slow: list[socket.socket] = []
    try:
        p.add("/user/alice", backends["alice"].url)
        for _ in range(2):
            s = socket.create_connection(("127.0.0.1", p.port), timeout=30)
            s.sendall(
                b"POST /user/alice/upload HTTP/1.1\r\nHost: x\r\n"
                b"Content-Length: 100000\r\n\r\n" + b"x" * 10
            )
            slow.append(s)
        deadline = time.monotonic() + 30
        while _metric(p, "labfleet_proxy_upstream_connections") < 2:
            assert time.monotonic() < deadline
            time.sleep(0.05)
        r = httpx.get(p.url + "/user/alice/fair", timeout=60)
        assert r.status_code == 200
        assert r.json()["server"] == "alice"
        for s in slow:  # the stalled uploads were cut off, not left holding the pool
            s.settimeout(30)
            got = s.recv(65536)
            assert got == b"" or got.startswith(b"HTTP/1.1 408")
    finally:
        for s in slow:
            s.close()
        p.stop()


def test_waiting_for_a_pool_slot_has_a_deadline() -> None:
    """--connect-timeout bounds the wait for a free pool slot too: 503, not a hang.

    The only slot (limit 1) is held by a request to a target that accepts and
    never answers; the next request to it must be refused after the deadline.
    """
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(8)  # the kernel accepts; nobody ever reads or answers
    p = Proxy(
        "--max-connections-per-target",
        "1",
        "--connect-timeout",
        "1000",
        "--shutdown-timeout",
        "2000",
    )
    holder = socket.create_connection(("127.0.0.1", p.port), timeout=30)
    try:
        p.add("/user/mute", f"http://127.0.0.1:{srv.getsockname()[1]}")
        holder.sendall(b"GET /user/mute/hold HTTP/1.1\r\nHost: x\r\n\r\n")
        deadline = time.monotonic() + 30
        while _metric(p, "labfleet_proxy_upstream_connections") < 1:
            assert time.monotonic() < deadline
            time.sleep(0.05)
        r = httpx.get(p.url + "/user/mute/next", timeout=60)
        assert r.status_code == 503
    finally:
        holder.close()
        p.stop()
        srv.close()


def _try_get(port: int) -> bytes:
    """A request on a new connection; a refused or reset connection reads as b''."""
    try:
        return raw_exchange(port, b"GET /user/alice/ HTTP/1.1\r\nHost: x\r\n\r\n")
    except ConnectionError:
        return b""


def test_per_address_connection_cap(backends: dict[str, Backend]) -> None:
    p = Proxy("--max-connections-per-ip", "3")
    held: list[socket.socket] = []
    try:
        p.add("/user/alice", backends["alice"].url)
        for _ in range(3):
            s = socket.create_connection(("127.0.0.1", p.port), timeout=30)
            s.sendall(b"GET /user/alice/ HTTP/1.1\r\nHost: x\r\n\r\n")
            assert read_response(s)[0] == 200
            held.append(s)
        raw = _try_get(p.port)
        assert not raw.startswith(b"HTTP/1.1 200"), raw[:100]
        held.pop().close()
        deadline = time.monotonic() + 30
        while True:  # the slot frees once the proxy sees the close
            raw = _try_get(p.port)
            if raw.startswith(b"HTTP/1.1 200"):
                break
            assert time.monotonic() < deadline
            time.sleep(0.05)
    finally:
        for s in held:
            s.close()
        p.stop()


def test_idle_websocket_without_pongs_is_closed(backends: dict[str, Backend]) -> None:
    p = Proxy("--websocket-idle-timeout", "1000")
    try:
        p.add("/user/alice", backends["alice"].url)
        key = base64.b64encode(os.urandom(16))
        with socket.create_connection(("127.0.0.1", p.port), timeout=30) as s:
            s.sendall(
                b"GET /user/alice/ws HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\n"
                b"Upgrade: websocket\r\nSec-WebSocket-Version: 13\r\n"
                b"Sec-WebSocket-Key: " + key + b"\r\n\r\n"
            )
            got = b""
            while True:  # never answer the proxy's pings: the tunnel must end
                data = s.recv(65536)
                if not data:
                    break
                got += data
        assert got.startswith(b"HTTP/1.1 101")
        assert b"\x89" in got  # the proxy pinged before giving up
    finally:
        p.stop()


@pytest.mark.asyncio
async def test_websocket_that_answers_pings_stays_open(backends: dict[str, Backend]) -> None:
    import asyncio

    import websockets

    p = Proxy("--websocket-idle-timeout", "600")
    try:
        p.add("/user/alice", backends["alice"].url)
        url = f"ws://127.0.0.1:{p.port}/user/alice/ws"
        async with websockets.connect(url, ping_interval=None) as ws:
            json.loads(await ws.recv())
            await asyncio.sleep(2.5)  # several idle periods: the client's pongs keep it
            await ws.send("still here")
            assert await ws.recv() == "still here"
    finally:
        p.stop()


# -- metrics ---------------------------------------------------------------------------


def test_metrics_are_aggregate_and_parse_as_prometheus(proxy: Proxy) -> None:
    from prometheus_client.parser import text_string_to_metric_families

    httpx.get(proxy.url + "/user/alice/m", timeout=30)
    r = httpx.get(proxy.api_url + "/metrics", headers={"Authorization": f"token {TOKEN}"})
    assert r.status_code == 200
    assert "/user/" not in r.text and "alice" not in r.text
    families = {f.name: f for f in text_string_to_metric_families(r.text)}
    assert "labfleet_proxy_requests" in families
    for family in families.values():
        for sample in family.samples:
            assert set(sample.labels) <= {"code", "kind", "direction", "phase"}


def test_metrics_port_serves_only_aggregates(backends: dict[str, Backend]) -> None:
    from .conftest import free_port

    mport = free_port()
    p = Proxy("--metrics-ip", "127.0.0.1", "--metrics-port", str(mport))
    try:
        p.add("/user/alice", backends["alice"].url)
        httpx.get(p.url + "/user/alice/m", timeout=30)
        deadline = time.monotonic() + 30
        while True:
            try:
                text = httpx.get(f"http://127.0.0.1:{mport}/metrics", timeout=5).text
                break
            except httpx.TransportError:
                assert time.monotonic() < deadline
                time.sleep(0.05)
        assert "labfleet_proxy_requests_total" in text
        assert "alice" not in text
    finally:
        p.stop()
