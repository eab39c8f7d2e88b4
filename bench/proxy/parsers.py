"""Request-head parsing cost: labfleet-proxy's parser against httptools (llhttp) and h11.

Run: ``.venv/bin/python bench/proxy/parsers.py``. One typical browser request
head (11 headers, ~600 bytes), parsed N times in one process; prints
microseconds per head, the best of many small interleaved batches (so that
the pauses of a busy machine drop out). Recorded in docs/proxy.md (the parser
decision).
"""

from __future__ import annotations

import time

import h11
import httptools

from labfleet.proxy.http_parse import find_head_end, parse_request_head

HEAD = (
    b"GET /user/alice/api/contents/work/notebook.ipynb?content=1&_=1701234567 HTTP/1.1\r\n"
    b"Host: hub.example.org\r\nUser-Agent: Mozilla/5.0 (X11; Linux x86_64; rv:120.0) "
    b"Gecko/20100101 Firefox/120.0\r\nAccept: application/json, text/plain, */*\r\n"
    b"Accept-Language: en-US,en;q=0.5\r\nAccept-Encoding: gzip, deflate, br\r\n"
    b"X-XSRFToken: 2|8a0b1c2d|0123456789abcdef0123456789abcdef|1701234567\r\n"
    b"Connection: keep-alive\r\nReferer: https://hub.example.org/user/alice/lab\r\n"
    b"Cookie: _xsrf=2|8a0b1c2d|0123456789abcdef|1701234567; "
    b"jupyterhub-user-alice=2|1:0|10:1701234567|21:jupyterhub-user-alice|44:abc=|0123\r\n"
    b"Sec-Fetch-Dest: empty\r\nSec-Fetch-Mode: cors\r\n\r\n"
)


def ours() -> None:
    end = find_head_end(HEAD)
    parse_request_head(HEAD[:end])


class _Sink:
    def on_header(self, name: bytes, value: bytes) -> None:
        pass

    def on_url(self, url: bytes) -> None:
        pass


def llhttp() -> None:
    httptools.HttpRequestParser(_Sink()).feed_data(HEAD)


def h11_parse() -> None:
    conn = h11.Connection(h11.SERVER)
    conn.receive_data(HEAD)
    conn.next_event()


def main() -> None:
    batch, batches = 20, 2000
    print(f"| parser | µs per head ({len(HEAD)} bytes, best of {batches} batches of {batch}) |")
    print("|---|---:|")
    parsers = (("labfleet-proxy", ours), ("httptools (llhttp)", llhttp), ("h11", h11_parse))
    best = dict.fromkeys((name for name, _ in parsers), float("inf"))
    for _ in range(batches):  # interleaved small batches: a busy machine's pauses drop out
        for name, fn in parsers:
            t = time.perf_counter()
            for _ in range(batch):
                fn()
            best[name] = min(best[name], (time.perf_counter() - t) / batch * 1e6)
    for name, us in best.items():
        print(f"| {name} | {us:.1f} |")
    print(f"\nlabfleet-proxy / llhttp: {best['labfleet-proxy'] / best['httptools (llhttp)']:.1f}x")


if __name__ == "__main__":
    main()
