"""Differential fuzzing of the proxy's request parser against h11 and llhttp.

Hypothesis builds request heads and bodies from HTTP's grammar (with the
framing headers that matter for smuggling over-represented), then mutates
the bytes (inserts CR/LF/NUL/space/obs-text, drops or doubles bytes, turns
CRLF into LF). Every input on which the proxy's verdict or framing matches
neither h11 nor llhttp fails, except the documented deliberate refusals in
``differential.DELIBERATE``. Cases found so far are kept as regressions in
``fuzz_regressions.json``.

CI runs a seeded, bounded number of examples; ``pytest -m fuzz`` runs many more.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, seed, settings
from hypothesis import strategies as st

from .differential import compare, ours

REGRESSIONS = Path(__file__).with_name("fuzz_regressions.json")

_SETTINGS = {
    "deadline": None,
    "derandomize": False,
    "suppress_health_check": [HealthCheck.too_slow, HealthCheck.data_too_large],
    "database": None,
}

methods = st.sampled_from([b"GET", b"POST", b"PUT", b"HEAD", b"DELETE", b"OPTIONS", b"PATCH"])
targets = st.sampled_from(
    [
        b"/",
        b"/user/alice/lab",
        b"/hub/api/users?x=1",
        b"/a%2Fb",
        b"*",
        b"http://x/abs",
        b"//double",
        b"/\xc3\xa9",
        b"/sp ace",
    ]
)
versions = st.sampled_from([b"HTTP/1.1"] * 6 + [b"HTTP/1.0", b"HTTP/2.0", b"HTTP/1.x", b"http/1.1"])
names = st.sampled_from(
    [b"X-A", b"Accept", b"Cookie", b"X-Forwarded-For", b"Expect", b"Trailer", b"Te"]
) | st.binary(min_size=1, max_size=6).filter(lambda b: b":" not in b and b"\r\n" not in b)
values = st.sampled_from([b"a", b"", b" padded ", b"a,b", b"\tx", b"100-continue"]) | st.binary(
    max_size=8
)
cl_values = st.sampled_from(
    [b"0", b"3", b"5", b"+3", b"3, 3", b"-1", b" 3", b"0x3", b"99999999999999999999", b"03"]
)
te_values = st.sampled_from(
    [b"chunked", b"Chunked", b"gzip, chunked", b"chunked, gzip", b"xchunked", b"chunked ", b""]
)
connection_values = st.sampled_from([b"close", b"keep-alive", b"upgrade", b"X-A", b"close, X-A"])


@st.composite
def chunked_body(draw: st.DrawFn) -> bytes:
    out = b""
    for _ in range(draw(st.integers(0, 3))):
        data = draw(st.binary(min_size=1, max_size=8))
        ext = draw(st.sampled_from([b"", b";a=b", b"; x", b";\x00"]))
        size = draw(st.sampled_from([b"%x" % len(data), b"%X" % len(data), b"0%x" % len(data)]))
        out += size + ext + b"\r\n" + data + b"\r\n"
    out += draw(st.sampled_from([b"0\r\n\r\n", b"0\r\nX-T: 1\r\n\r\n", b"0\r\n", b"00\r\n\r\n"]))
    return out


@st.composite
def requests(draw: st.DrawFn) -> bytes:
    line = draw(methods) + b" " + draw(targets) + b" " + draw(versions)
    headers: list[bytes] = []
    if draw(st.booleans()) or draw(st.booleans()):
        headers.append(b"Host: " + draw(st.sampled_from([b"hub", b"a:80", b"[::1]:8", b"a b"])))
    for _ in range(draw(st.integers(0, 4))):
        kind = draw(st.integers(0, 5))
        if kind == 0:
            headers.append(b"Content-Length: " + draw(cl_values))
        elif kind == 1:
            headers.append(b"Transfer-Encoding: " + draw(te_values))
        elif kind == 2:
            headers.append(b"Connection: " + draw(connection_values))
        elif kind == 3:
            headers.append(b"Host: hub")
        else:
            headers.append(draw(names) + b":" + draw(st.sampled_from([b" ", b""])) + draw(values))
    head = b"\r\n".join([line, *headers]) + b"\r\n\r\n"
    body = draw(chunked_body()) if draw(st.booleans()) else draw(st.binary(max_size=8))
    tail = draw(st.sampled_from([b"", b"GET /next HTTP/1.1\r\nHost: hub\r\n\r\n"]))
    prefix = draw(st.sampled_from([b""] * 4 + [b"\r\n", b"\n"]))
    return prefix + head + body + tail


_INSERTS = [b"\r", b"\n", b"\r\n", b"\x00", b" ", b"\t", b":", b"\x7f", b"\x80", b"\xff", b","]


@st.composite
def mutated(draw: st.DrawFn) -> bytes:
    data = bytearray(draw(requests()))
    for _ in range(draw(st.integers(0, 3))):
        if not data:
            break
        op = draw(st.integers(0, 4))
        at = draw(st.integers(0, len(data) - 1))
        if op == 0:
            data[at:at] = draw(st.sampled_from(_INSERTS))
        elif op == 1:
            del data[at]
        elif op == 2:
            data[at:at] = data[at : at + draw(st.integers(1, 12))]
        elif op == 3:
            data = bytearray(bytes(data).replace(b"\r\n", b"\n", 1))
        else:
            data[at] = data[at] ^ 0x20  # flip letter case (and worse)
    return bytes(data)


def _check(data: bytes) -> None:
    result = compare(data)
    assert not result.disagrees_with_both, f"{data!r}: {result}"


@seed(20261201)
@settings(max_examples=400, **_SETTINGS)  # type: ignore[arg-type]
@given(requests())
def test_generated_requests_frame_like_a_reference(data: bytes) -> None:
    _check(data)


@seed(20261202)
@settings(max_examples=600, **_SETTINGS)  # type: ignore[arg-type]
@given(mutated())
def test_mutated_requests_frame_like_a_reference(data: bytes) -> None:
    _check(data)


@pytest.mark.fuzz
@pytest.mark.timeout(1800)  # 3 min on a quiet VM, 8 on a busy one: past the 300 s default
@settings(max_examples=50_000, **_SETTINGS)  # type: ignore[arg-type]
@given(mutated())
def test_long_fuzz_run(data: bytes) -> None:
    _check(data)


def _regressions() -> list[dict[str, str]]:
    cases: list[dict[str, str]] = json.loads(REGRESSIONS.read_text())
    return cases


@pytest.mark.parametrize("case", _regressions(), ids=lambda c: c["name"])
def test_found_cases_stay_fixed(case: dict[str, str]) -> None:
    data = bytes.fromhex(case["hex"])
    _check(data)
    assert ours(data).kind == case["ours"], case["why"]
