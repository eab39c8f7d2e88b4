"""HTTP/1.1 behaviour of a real labfleet-proxy: framing, smuggling, keep-alive, bodies."""

from __future__ import annotations

import hashlib
import json
import socket
import threading
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from .conftest import Backend, Proxy, raw_exchange, read_response

_A = b"POST /user/alice/ HTTP/1.1\r\nHost: x\r\n"
_G = b"GET /user/alice/ HTTP/1.1\r\nHost: x\r\n"
_TE = b"Transfer-Encoding: chunked\r\n"

# Each of these is a request that two HTTP parsers could frame differently.
SMUGGLING = {
    "cl_and_te": _A + b"Content-Length: 4\r\n" + _TE + b"\r\n0\r\n\r\n"
    b"GET /user/bob/ HTTP/1.1\r\nHost: x\r\n\r\n",
    "duplicate_cl_same": _A + b"Content-Length: 3\r\nContent-Length: 3\r\n\r\nabc",
    "duplicate_cl_differs": _A + b"Content-Length: 3\r\nContent-Length: 40\r\n\r\nabc",
    "cl_list": _A + b"Content-Length: 3, 3\r\n\r\nabc",
    "cl_plus": _A + b"Content-Length: +3\r\n\r\nabc",
    "te_obfuscated": _A + b"Transfer-Encoding: xchunked\r\n\r\n",
    "te_list": _A + b"Transfer-Encoding: gzip, chunked\r\n\r\n",
    "te_twice": _A + _TE + _TE + b"\r\n0\r\n\r\n",
    "te_http10": b"POST /user/alice/ HTTP/1.0\r\n" + _TE + b"\r\n0\r\n\r\n",
    "space_before_colon": _G + b"Transfer-Encoding : chunked\r\n\r\n",
    "obs_fold": _G + b"X-A: a\r\n b\r\n\r\n",
    "bare_cr_value": _G + b"X-A: a\rTransfer-Encoding: chunked\r\n\r\n",
    "bare_lf_value": _G + b"X-A: a\nX-B: b\r\n\r\n",
    "nul_value": _G + b"X-A: a\x00b\r\n\r\n",
    "duplicate_host": _G + b"Host: y\r\n\r\n",
    "missing_host": b"GET /user/alice/ HTTP/1.1\r\nX-A: a\r\n\r\n",
    "bad_request_line": b"GET  /user/alice/ HTTP/1.1\r\nHost: x\r\n\r\n",
    "bad_version": b"GET /user/alice/ HTTP/1.x\r\nHost: x\r\n\r\n",
    "non_ascii_target": "GET /user/alice/\u00e9 HTTP/1.1\r\nHost: x\r\n\r\n".encode(),
    "lf_only": b"GET /user/alice/ HTTP/1.1\nHost: x\n\n",
    "bad_chunk_size": _A + _TE + b"\r\nzz\r\nabc\r\n0\r\n\r\n",
    "chunk_size_overflow": _A + _TE + b"\r\n10000000000000000\r\n",
    "chunk_longer_than_size": _A + _TE + b"\r\n3\r\nabcdef\r\n0\r\n\r\n",
    "chunk_bare_lf": _A + _TE + b"\r\n3\nabc\r\n0\r\n\r\n",
}


@pytest.mark.parametrize("name", sorted(SMUGGLING))
def test_smuggling_shapes_are_refused(proxy: Proxy, name: str) -> None:
    raw = raw_exchange(proxy.port, SMUGGLING[name])
    status = int(raw.split(b" ", 2)[1]) if raw.startswith(b"HTTP/1.1 ") else 0
    assert 400 <= status < 600, (name, raw[:200])
    # the refused request (or what hides behind it) never produced a backend answer
    # after the error; chunked errors may follow a started response only when the
    # head was valid, and then the connection is closed.
    assert b'"server": "bob"' not in raw


def test_http10_request_works_and_closes(proxy: Proxy) -> None:
    raw = raw_exchange(proxy.port, b"GET /user/alice/x HTTP/1.0\r\n\r\n")
    assert raw.startswith(b"HTTP/1.1 200")
    assert b'"server": "alice"' in raw


def test_keep_alive_both_sides(proxy: Proxy) -> None:
    with httpx.Client(base_url=proxy.url, timeout=10) as c:
        ports = {c.get("/user/bob/ka").json()["peer_port"] for _ in range(5)}
    assert len(ports) == 1  # one pooled upstream connection served all five


def test_pipelined_requests_answered_in_order(proxy: Proxy) -> None:
    with socket.create_connection(("127.0.0.1", proxy.port), timeout=10) as s:
        s.sendall(
            b"GET /user/alice/one HTTP/1.1\r\nHost: x\r\n\r\n"
            b"GET /user/bob/two HTTP/1.1\r\nHost: x\r\n\r\n"
            b"POST /user/alice/three HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello"
        )
        answers = [read_response(s) for _ in range(3)]
    bodies = [json.loads(a[2]) for a in answers]
    assert [(b["server"], b["uri"]) for b in bodies] == [
        ("alice", "/user/alice/one"),
        ("bob", "/user/bob/two"),
        ("alice", "/user/alice/three"),
    ]
    assert bodies[2]["body_len"] == 5


def test_read_response_keeps_bytes_read_ahead() -> None:
    """The helper above must not lose a pipelined answer that arrived with the one before.

    It made the pipelining test flaky under load: when two answers came in one
    read, a fresh buffered reader per call swallowed the second one.
    """
    ours, theirs = socket.socketpair()
    with ours, theirs:
        theirs.sendall(
            b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\none"
            b"HTTP/1.1 201 Created\r\nContent-Length: 3\r\n\r\ntwo"
        )
        theirs.shutdown(socket.SHUT_WR)
        ours.settimeout(10)
        answers = [read_response(ours) for _ in range(2)]
    assert [(a[0], a[2]) for a in answers] == [(200, b"one"), (201, b"two")]


def test_chunked_request_body_is_forwarded(proxy: Proxy) -> None:
    body = b"0123456789" * 1000

    def gen():  # type: ignore[no-untyped-def]
        for i in range(0, len(body), 777):
            yield body[i : i + 777]

    r = httpx.post(proxy.url + "/user/alice/upload", content=gen(), timeout=10)
    assert r.json()["len"] == len(body)
    assert r.json()["sha"] == hashlib.sha256(body).hexdigest()


def test_chunked_response_is_streamed(proxy: Proxy) -> None:
    n = 3_000_017
    with httpx.stream("GET", proxy.url + f"/user/bob/stream/{n}", timeout=30) as r:
        assert r.headers["transfer-encoding"] == "chunked"
        data = b"".join(r.iter_bytes())
    block = bytes(range(256)) * 256
    expected = (block * (n // len(block) + 1))[:n]
    assert data == expected


def test_expect_100_continue(proxy: Proxy) -> None:
    with socket.create_connection(("127.0.0.1", proxy.port), timeout=10) as s:
        s.sendall(
            b"POST /user/alice/upload HTTP/1.1\r\nHost: x\r\nContent-Length: 11\r\n"
            b"Expect: 100-continue\r\n\r\n"
        )
        interim = s.recv(4096)
        assert interim.startswith(b"HTTP/1.1 100")
        s.sendall(b"hello world")
        status, _, body = read_response(s)
    assert status == 200 and json.loads(body)["len"] == 11


def test_head_request_has_no_body_and_keeps_connection(proxy: Proxy) -> None:
    with socket.create_connection(("127.0.0.1", proxy.port), timeout=10) as s:
        s.sendall(b"HEAD /user/alice/h HTTP/1.1\r\nHost: x\r\n\r\n")
        head = b""
        while not head.endswith(b"\r\n\r\n"):
            head += s.recv(1)
        assert b"Content-Length: 1234" in head
        s.sendall(b"GET /user/alice/after HTTP/1.1\r\nHost: x\r\n\r\n")
        status, _, body = read_response(s)
    assert status == 200 and json.loads(body)["uri"] == "/user/alice/after"


def test_status_codes_pass_through(proxy: Proxy) -> None:
    r = httpx.get(proxy.url + "/user/alice/status/418", timeout=10)
    assert r.status_code == 418 and r.json()["server"] == "alice"
    r = httpx.get(proxy.url + "/user/alice/status/204", timeout=10)
    assert r.status_code == 204 and r.content == b""


def test_bounded_pool(backends: dict[str, Backend]) -> None:
    p = Proxy("--max-connections-per-target", "2")
    try:
        p.add("/user/bob", backends["bob"].url)
        limits = httpx.Limits(max_connections=12)
        with httpx.Client(timeout=30, limits=limits) as c, ThreadPoolExecutor(12) as ex:
            results = list(ex.map(lambda i: c.get(p.url + f"/user/bob/{i}"), range(36)))
        assert all(r.status_code == 200 for r in results)
        assert len({r.json()["peer_port"] for r in results}) <= 2
    finally:
        p.stop()


def test_target_down_gives_503_page(proxy: Proxy) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        dead = s.getsockname()[1]  # bound, not listening: connection refused
        proxy.add("/user/dead", f"http://127.0.0.1:{dead}")
        try:
            raw = raw_exchange(
                proxy.port,
                b"GET /user/dead/<b>x</b> HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
                timeout=30,
            )
        finally:
            proxy.api("DELETE", "/user/dead")
    assert raw.startswith(b"HTTP/1.1 503")
    assert b"<b>x</b>" not in raw and b"&lt;b&gt;x&lt;/b&gt;" in raw


def test_error_target_is_fetched_like_chp(backends: dict[str, Backend]) -> None:
    p = Proxy("--error-target", backends["hub"].url + "/hub/error")
    try:
        p.add("/user/dead", "http://127.0.0.1:9")
        r = httpx.get(p.url + "/user/dead/lab?x=1", timeout=30)
        assert r.status_code == 503
        page = r.json()
        assert page["server"] == "hub"
        assert page["uri"] == "/hub/error/503?url=%2Fuser%2Fdead%2Flab%3Fx%3D1"
        r = httpx.get(p.url + "/nowhere", timeout=30)
        assert r.status_code == 404 and r.json()["uri"] == "/hub/error/404?url=%2Fnowhere"
    finally:
        p.stop()


def _vm_hwm_kb(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    raise AssertionError("no VmHWM")


def test_large_bodies_stream_without_buffering(backends: dict[str, Backend]) -> None:
    """128 MiB up and down; the proxy's peak RSS stays far below that."""
    p = Proxy()
    try:
        p.add("/user/alice", backends["alice"].url)
        size = 128 * 1024 * 1024
        piece = b"\xab" * (1 << 20)

        def gen():  # type: ignore[no-untyped-def]
            for _ in range(size // len(piece)):
                yield piece

        r = httpx.post(
            p.url + "/user/alice/upload",
            content=gen(),
            timeout=120,
            headers={"Content-Length": str(size)},
        )
        assert r.json()["len"] == size
        got = 0
        with httpx.stream("GET", p.url + f"/user/alice/stream/{size}", timeout=120) as r:
            for chunk in r.iter_raw():
                got += len(chunk)
        assert got == size
        assert _vm_hwm_kb(p.proc.pid) < 100 * 1024
    finally:
        p.stop()


def test_websocket_through_proxy(proxy: Proxy) -> None:
    from websockets.sync.client import connect

    with connect(f"ws://127.0.0.1:{proxy.port}/user/alice/api/kernels/k1/ws?t=1") as ws:
        hello = json.loads(ws.recv(timeout=10))
        assert hello == {"server": "alice", "uri": "/user/alice/api/kernels/k1/ws?t=1"}
        ws.send("ping")
        assert ws.recv(timeout=10) == "ping"
        blob = bytes(range(256)) * 4096
        ws.send(blob)
        assert ws.recv(timeout=10) == blob


def test_websocket_to_dead_target_is_refused(proxy: Proxy) -> None:
    from websockets.exceptions import InvalidStatus
    from websockets.sync.client import connect

    proxy.add("/user/dead2", "http://127.0.0.1:9")
    try:
        with pytest.raises(InvalidStatus) as info:
            connect(f"ws://127.0.0.1:{proxy.port}/user/dead2/ws", open_timeout=30)
        assert info.value.response.status_code == 503
    finally:
        proxy.api("DELETE", "/user/dead2")


@pytest.mark.parametrize(
    "response",
    [
        b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\nhello",
        b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello",
        b"HTTP/1.1 200 OK\r\nX-A: a\rSet-Cookie: x=1\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n",
        b"HTTP/1.1 2000 OK\r\n\r\n",
    ],
)
def test_bad_upstream_response_is_502(proxy: Proxy, response: bytes) -> None:
    """A target that answers with a smuggling-shaped response gets a 502, not relayed."""
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(4)

    def serve() -> None:
        conn, _ = srv.accept()
        conn.recv(65536)
        conn.sendall(response)
        conn.close()

    t = threading.Thread(target=serve, daemon=True)
    t.start()
    proxy.add("/user/evil", f"http://127.0.0.1:{srv.getsockname()[1]}")
    try:
        r = httpx.get(proxy.url + "/user/evil/", timeout=30)
        assert r.status_code == 502
    finally:
        proxy.api("DELETE", "/user/evil")
        srv.close()


def test_response_until_close_is_relayed(proxy: Proxy) -> None:
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(4)

    def serve() -> None:
        conn, _ = srv.accept()
        conn.recv(65536)
        conn.sendall(b"HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\nuntil the end")
        conn.close()

    t = threading.Thread(target=serve, daemon=True)
    t.start()
    proxy.add("/user/old", f"http://127.0.0.1:{srv.getsockname()[1]}")
    try:
        raw = raw_exchange(proxy.port, b"GET /user/old/ HTTP/1.1\r\nHost: x\r\n\r\n")
        assert raw.startswith(b"HTTP/1.1 200")
        assert b"Connection: close" in raw and raw.endswith(b"until the end")
    finally:
        proxy.api("DELETE", "/user/old")
        srv.close()


def test_stale_pooled_connection_is_retried_once(proxy: Proxy) -> None:
    """A target that drops a kept-alive socket on its 2nd request: the proxy replays it."""
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(8)
    served: list[int] = []

    def handle(conn: socket.socket) -> None:
        with conn:
            first = True
            while True:
                data = conn.recv(65536)
                if not data:
                    return
                if not first:
                    return  # close without answering, like a server's idle timeout race
                first = False
                served.append(1)
                conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")

    def serve() -> None:
        while True:
            try:
                conn, _ = srv.accept()
            except OSError:
                return
            threading.Thread(target=handle, args=(conn,), daemon=True).start()

    threading.Thread(target=serve, daemon=True).start()
    proxy.add("/user/flaky", f"http://127.0.0.1:{srv.getsockname()[1]}")
    try:
        with httpx.Client(timeout=30) as c:
            for _ in range(3):
                r = c.get(proxy.url + "/user/flaky/x")
                assert (r.status_code, r.text) == (200, "ok")
        assert len(served) == 3  # each answered on a fresh connection after a replay
    finally:
        proxy.api("DELETE", "/user/flaky")
        srv.close()


def test_idle_and_slow_clients_are_cut_off(backends: dict[str, Backend]) -> None:
    """Keep-alive idle timeout, and a head trickled byte by byte (slowloris) gets 408."""
    p = Proxy("--keep-alive-timeout", "500", "--timeout", "1500")
    try:
        p.add("/user/alice", backends["alice"].url)
        with socket.create_connection(("127.0.0.1", p.port), timeout=30) as s:
            s.sendall(b"GET /user/alice/ HTTP/1.1\r\nHost: x\r\n\r\n")
            assert read_response(s)[0] == 200
            s.settimeout(30)
            assert s.recv(1) == b""  # closed by the proxy once idle
        with socket.create_connection(("127.0.0.1", p.port), timeout=30) as s:
            s.sendall(b"GET /user/alice/ HTTP/1.1\r\nHost: x\r\nX-Slow: ")
            s.settimeout(0.2)
            got = b""
            for _ in range(300):  # keep trickling for up to a minute
                try:
                    s.sendall(b"a")
                    got += s.recv(4096)
                except TimeoutError:
                    continue
                except OSError:
                    break
                if got:
                    break
            assert got.startswith(b"HTTP/1.1 408")
    finally:
        p.stop()


def test_proxy_timeout_gives_504() -> None:
    """A target that accepts and never answers: 504 after --proxy-timeout."""
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(8)  # the kernel accepts; nobody ever reads or answers
    p = Proxy("--proxy-timeout", "1000")
    try:
        p.add("/user/mute", f"http://127.0.0.1:{srv.getsockname()[1]}")
        r = httpx.get(p.url + "/user/mute/x", timeout=60)
        assert r.status_code == 504
    finally:
        p.stop()
        srv.close()
