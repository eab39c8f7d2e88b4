"""Pure pieces of the proxy: route table, parsers, path rules, heads, options."""

from __future__ import annotations

import pytest

from labfleet.proxy.api import token_matches
from labfleet.proxy.http_parse import (
    ChunkedTracker,
    HttpError,
    host_without_port,
    parse_request_head,
    parse_response_head,
)
from labfleet.proxy.main import build_parser, options_from_args
from labfleet.proxy.messages import builtin_error_page, upstream_request_head
from labfleet.proxy.paths import route_segments, split_target, strip_prefix
from labfleet.proxy.routes import (
    RouteError,
    RouteTable,
    format_timestamp,
    parse_timestamp,
    path_to_key,
)
from labfleet.proxy.targets import Target
from labfleet.proxy.trust import TrustedProxies, parse_networks
from labfleet.proxy.workers import options_from_json, options_to_json


# -- route table ---------------------------------------------------------
def table(*paths: str) -> RouteTable:
    t = RouteTable()
    for p in paths:
        t.add(path_to_key(p), f"http://127.0.0.1:1{len(p)}", {"p": p})
    return t


def lookup(t: RouteTable, path: str) -> str | None:
    route = t.lookup(route_segments(path.encode()))
    return None if route is None else route.path


def test_longest_prefix_wins_on_segment_boundaries() -> None:
    t = table("/", "/user/alice", "/user/alice/proxy/8080", "/user/bob")
    assert lookup(t, "/user/alice/lab") == "/user/alice"
    assert lookup(t, "/user/alice/proxy/8080/x") == "/user/alice/proxy/8080"
    assert lookup(t, "/user/alice/proxy/80801") == "/user/alice"
    assert lookup(t, "/user/alicex") == "/"
    assert lookup(t, "/") == "/"
    assert lookup(table("/user/alice"), "/hub/") is None


def test_path_to_key_cleans_and_decodes_like_chp() -> None:
    assert path_to_key("/user/alice/") == ("user", "alice")
    assert path_to_key("user/alice") == ("user", "alice")
    assert path_to_key("/") == ()
    assert path_to_key("") == ()
    assert path_to_key("/user/a%40b") == ("user", "a@b")
    assert path_to_key("/user/a%2Fb") == ("user", "a/b")  # stays one segment
    assert path_to_key("/Host.Example/user/x", host_routing=True) == ("host.example", "user", "x")
    for bad in ("/user/..", "/user/%2e%2e/x", "/./x", "/user/%ff", "/user/a%0ab"):
        with pytest.raises(RouteError):
            path_to_key(bad)


def test_remove_and_depth() -> None:
    t = table("/", "/a/b/c/d")
    assert lookup(t, "/a/b/c/d/e") == "/a/b/c/d"
    assert t.remove(("a", "b", "c", "d"))
    assert not t.remove(("a", "b", "c", "d"))
    assert lookup(t, "/a/b/c/d/e") == "/"


def test_replacing_keeps_byte_counters_and_sets_activity() -> None:
    t = RouteTable()
    r = t.add(("u",), "http://a:1", {}, now=100.0)
    r.bytes_in = 7
    r2 = t.add(("u",), "http://b:1", {"x": 1}, now=200.0)
    assert (r2.bytes_in, r2.last_activity, r2.target) == (7, 200.0, "http://b:1")
    assert t.to_json()["/u"] == {
        "x": 1,
        "target": "http://b:1",
        "last_activity": "1970-01-01T00:03:20.000Z",
    }


def test_inactive_since_and_timestamps() -> None:
    t = RouteTable()
    t.add(("old",), "http://a:1", {}, now=1000.0)
    t.add(("new",), "http://a:1", {}, now=2000.0)
    assert [r.path for r in t.inactive_since(1500.0)] == ["/old"]
    assert parse_timestamp(format_timestamp(1234.5)) == 1234.5
    assert parse_timestamp("1970-01-01T00:20:34.500+00:00") == 1234.5
    assert parse_timestamp("1970-01-01T00:20:34.5") == 1234.5
    with pytest.raises(ValueError):
        parse_timestamp("yesterday")


# -- request paths -------------------------------------------------------
def test_route_segments() -> None:
    assert route_segments(b"/") == [""]
    assert route_segments(b"/user/alice/") == ["user", "alice", ""]
    assert route_segments(b"/user/ali%63e") == ["user", "alice"]
    assert route_segments(b"/user/alice%2F..%2Fbob") == ["user", "alice/../bob"]
    assert route_segments(b"/a/.well-known/x") == ["a", ".well-known", "x"]
    for bad in (b"/a/../b", b"/a/./b", b"/a/%2e%2E/b", b"/a/%2e", b"/a%00", b"/%c3"):
        with pytest.raises(HttpError):
            route_segments(bad)


def test_split_and_strip() -> None:
    assert split_target(b"/a/b?x=1?y") == (b"/a/b", b"?x=1?y")
    assert split_target(b"/a") == (b"/a", b"")
    assert strip_prefix(b"/user/alice/api/x", 2) == b"/api/x"
    assert strip_prefix(b"/user/alice", 2) == b"/"
    assert strip_prefix(b"/x", 0) == b"/x"


# -- heads ---------------------------------------------------------------
def test_parse_request_head_fields() -> None:
    h = parse_request_head(
        b"POST /x?y HTTP/1.1\r\nHost: Example.org:8000\r\nContent-Length: 12\r\n"
        b"Connection: keep-alive, Upgrade\r\nUpgrade: websocket\r\nX-Forwarded-For: 1.2.3.4\r\n"
        b"Expect: 100-continue\r\nKeep-Alive: 5\r\nX-Other:  v  "
    )
    assert (h.method, h.target, h.content_length, h.chunked) == (b"POST", b"/x?y", 12, False)
    assert h.upgrade == b"websocket" and h.expect_continue and not h.connection_close
    assert h.x_forwarded == {b"x-forwarded-for": b"1.2.3.4"}
    names = [line.split(b":")[0].lower() for line in h.headers]
    assert b"connection" not in names and b"keep-alive" not in names
    assert b"X-Other:  v  " in h.headers  # pass-through lines stay as received
    assert host_without_port(h.host) == "example.org"
    assert host_without_port(b"[::1]:80") == "[::1]"


def test_upgrade_needs_connection_upgrade_and_http10_closes() -> None:
    h = parse_request_head(b"GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket")
    assert h.upgrade == b""
    h = parse_request_head(b"GET / HTTP/1.0")
    assert h.http10 and h.connection_close
    h = parse_request_head(b"GET / HTTP/1.0\r\nConnection: keep-alive")
    assert not h.connection_close


@pytest.mark.parametrize(
    "head",
    [
        b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nTransfer-Encoding: chunked",
        b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 1",
        b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: -1",
        b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 1e3",
        b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999999999999999",  # >= 2**64
        b"GET / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked, chunked",
        b"GET / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: identity",
        b"GET / HTTP/1.1\r\nHost: x\r\n folded",
        b"GET / HTTP/1.1\r\nHost: x\r\nBad Name: v",
        b"GET / HTTP/1.1\r\nHost: x\r\n: v",
        b"GET / HTTP/1.1\r\nHost: x\r\nX: a\x7fb",
        b"GET / HTTP/1.1\r\nHost: a b",
        b"GET / HTTP/1.1\r\nHost: a/b",
        b"GET / HTTP/1.1",
        b"GET / HTTP/2.0\r\nHost: x",
        b"G(T / HTTP/1.1\r\nHost: x",
        b"GET /\x01 HTTP/1.1\r\nHost: x",
        b"GET http://other/ HTTP/1.1\r\nHost: x",
        b"GET http://u@x/ HTTP/1.1\r\nHost: x",
        b"GET x HTTP/1.1\r\nHost: x",
    ],
)
def test_parse_request_head_refuses(head: bytes) -> None:
    with pytest.raises(HttpError) as info:
        parse_request_head(head)
    assert 400 <= info.value.status < 600


def test_absolute_form_becomes_origin_form() -> None:
    h = parse_request_head(b"GET HTTP://X:80?q HTTP/1.1\r\nHost: x:80")
    assert h.target == b"/?q" and h.authority == b"X:80"
    h = parse_request_head(b"GET https://x/a/b HTTP/1.0")
    assert h.target == b"/a/b" and h.host == b"x"


def test_parse_response_head() -> None:
    h = parse_response_head(b"HTTP/1.1 404 Not Found\r\nContent-Length: 3\r\nContent-Length: 3")
    assert (h.status, h.reason, h.content_length) == (404, b"Not Found", 3)
    h = parse_response_head(b"HTTP/1.0 200 OK")
    assert h.connection_close
    for bad in (
        b"HTTP/1.1 20 OK",
        b"ICY 200 OK",
        b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2",
        b"HTTP/1.1 200 OK\r\nX: a\rb",
    ):
        with pytest.raises(HttpError) as info:
            parse_response_head(bad)
        assert info.value.status == 502


def test_chunked_tracker_byte_by_byte_and_trailers() -> None:
    msg = b"5;ext=1\r\nhello\r\nA\r\n0123456789\r\n0\r\nTrailer: x\r\n\r\n"
    whole = ChunkedTracker()
    assert whole.feed(msg + b"NEXT") == len(msg)
    t = ChunkedTracker()
    ends = [t.feed(msg[i : i + 1]) for i in range(len(msg))]
    assert ends[:-1] == [-1] * (len(msg) - 1) and ends[-1] == 1


@pytest.mark.parametrize(
    "body",
    [
        b"x\r\n",
        b"5\nhello\r\n",
        b"5\r\nhelloX\r\n",
        b"-1\r\n",
        b"0\r\nbad trailer\r\n\r\n",
        b"0\r\n folded: x\r\n\r\n",
        b"1\r\na\r\r\n",
        b"f" * 20 + b"\r\n",
    ],
)
def test_chunked_tracker_refuses(body: bytes) -> None:
    with pytest.raises(HttpError):
        ChunkedTracker().feed(body)


def test_upstream_request_head() -> None:
    h = parse_request_head(
        b"POST /a HTTP/1.1\r\nHost: hub:8000\r\nTransfer-Encoding: chunked\r\n"
        b"X-Forwarded-Proto: https\r\nConnection: close"
    )
    out = upstream_request_head(
        h,
        b"/p/a",
        peer=b"10.0.0.1",
        scheme=b"http",
        x_forward=True,
        trusted_hop=None,
        host_override=None,
        extra=[b"X-Extra: 1"],
    )
    lines = out.split(b"\r\n")
    assert lines[0] == b"POST /p/a HTTP/1.1"
    assert b"Transfer-Encoding: chunked" in lines and b"Connection: close" not in lines
    assert b"X-Forwarded-For: 10.0.0.1" in lines and b"X-Real-Ip: 10.0.0.1" in lines
    assert b"X-Forwarded-Proto: http" in lines  # an untrusted peer's claim is replaced
    assert b"X-Forwarded-Port: 8000" in lines and b"X-Forwarded-Host: hub:8000" in lines
    assert b"X-Extra: 1" in lines and out.endswith(b"\r\n\r\n")
    trusted = TrustedProxies(parse_networks(["10.0.0.0/8"]))
    lines = upstream_request_head(
        h,
        b"/a",
        peer=b"10.0.0.1",
        scheme=b"http",
        x_forward=True,
        trusted_hop=trusted,
        host_override=None,
        extra=[],
    ).split(b"\r\n")
    assert b"X-Forwarded-Proto: https" in lines  # a trusted hop's claim is kept
    out = upstream_request_head(
        h,
        b"/a",
        peer=b"",
        scheme=b"http",
        x_forward=False,
        trusted_hop=trusted,
        host_override=b"t:1",
        extra=[],
    )
    assert b"Host: t:1" in out and b"Host: hub:8000" not in out
    assert b"x-forwarded-proto: https" in out.lower() and b"X-Forwarded-For" not in out


def test_error_page_escapes() -> None:
    page = builtin_error_page(404, "/x/<script>\"'")
    assert b"<script>" not in page and b"&lt;script&gt;&quot;&#x27;" in page


def test_targets() -> None:
    t = Target("http://127.0.0.1:8888/base/")
    assert (t.host, t.port, t.path_prefix, t.tls) == ("127.0.0.1", 8888, b"/base", False)
    assert Target("https://h").port == 443
    assert Target("http+unix://%2Ftmp%2Fs.sock").unix_path == "/tmp/s.sock"
    for bad in ("ftp://x", "http://", "nonsense"):
        with pytest.raises(ValueError):
            Target(bad)


def test_token_matching() -> None:
    assert token_matches(b"GET / HTTP/1.1\r\nAuthorization: token abc", "abc")
    assert token_matches(b"GET / HTTP/1.1\r\nauthorization:token abc", "abc")
    for head in (
        b"GET / HTTP/1.1\r\nAuthorization: token abc ",
        b"GET / HTTP/1.1\r\nAuthorization: token abcd",
        b"GET / HTTP/1.1\r\nAuthorization: Token abc",
        b"GET / HTTP/1.1\r\nAuthorization: token abc\r\nAuthorization: token abc",
        b"GET / HTTP/1.1\r\nX-Authorization: token abc",
        b"GET / HTTP/1.1",
    ):
        assert not token_matches(head, "abc"), head
    assert not token_matches(b"GET / HTTP/1.1\r\nAuthorization: token ", "")


def test_options_roundtrip_for_workers() -> None:
    args, unknown = build_parser().parse_known_args(
        [
            "--port",
            "9000",
            "--api-port",
            "9001",
            "--ssl-key",
            "k",
            "--ssl-cert",
            "c",
            "--custom-header",
            "A: b",
            "--keep-alive-timeout",
            "2500",
            "--workers",
            "3",
            "--zzz",
        ]
    )
    assert unknown == ["--zzz"]
    opts = options_from_args(args, "secret")
    assert opts.keep_alive_timeout_s == 2.5 and opts.workers == 3 and opts.public_tls.enabled
    again = options_from_json(options_to_json(opts))
    assert again.auth_token == "" and again.custom_headers == (("A", "b"),)
    assert again.public_tls == opts.public_tls and again.port == 9000


def test_trusted_proxies_from_labfleet_yaml_reach_the_proxy_command() -> None:
    from pathlib import Path

    from labfleet.config.load import parse_text
    from labfleet.hub.settings import build_hub_settings
    from labfleet.kube.proxy import proxy_command
    from labfleet.runtime import Runtime
    from labfleet.secrets import HubSecrets

    text = "proxy: {trusted_proxies: [10.0.0.0/8, '2001:db8::/32']}"
    secrets = HubSecrets(
        cookie_secret="ab" * 32,
        proxy_token="p" * 64,
        crypt_key="cd" * 32,
        supervisor_token="s" * 64,
    )
    runtime = Runtime(
        data_dir=Path("/srv/lf"), ip="0.0.0.0", port=8000, hub_port=1, proxy_api_port=2
    )
    command = build_hub_settings(parse_text(text), runtime, secrets)["ConfigurableHTTPProxy"][
        "command"
    ]
    assert command[1:] == ["--trusted-proxy", "10.0.0.0/8", "--trusted-proxy", "2001:db8::/32"]
    assert "--trusted-proxy=10.0.0.0/8" in proxy_command(parse_text(text))
    args = build_parser().parse_args(command[1:])
    assert options_from_args(args, "t").trusted_proxies == ("10.0.0.0/8", "2001:db8::/32")
    with pytest.raises(Exception, match="not an IP network"):
        parse_text("proxy: {trusted_proxies: [example.com]}")
