"""The parser's fast paths (``bytes.translate``/``isalnum`` instead of regexes)
decide exactly as the regexes that define them.

``http_parse`` checks a head with C-level byte operations because the regex
engine dominated its cost; each check here is compared, on bytes drawn with
the troublesome ones over-represented, with its plain definition.
"""

from __future__ import annotations

import re

from hypothesis import given, seed, settings
from hypothesis import strategies as st

from labfleet.proxy import http_parse

CTL = re.compile(rb"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
VISIBLE = re.compile(rb"[\x21-\x7e]+\Z")

_SPICY = st.sampled_from(
    [b"\r", b"\n", b"\r\n", b"\x00", b"\t", b" ", b"\x7f", b"\x80", b"\xff", b"\x0b", b"-", b":"]
)
_PLAIN = st.sampled_from([b"a", b"Z", b"0", b"GET", b"Host", b"/x", b"%2F", b"~", b"!", b"_"])
spicy_bytes = st.lists(_SPICY | _PLAIN | st.binary(max_size=3), max_size=24).map(b"".join)


def _bare_eol(data: bytes) -> bool:
    return re.search(rb"\r(?!\n)|(?<!\r)\n", data) is not None


@seed(20261202)
@settings(max_examples=300, deadline=None, database=None)
@given(spicy_bytes)
def test_bad_head_is_control_bytes_or_a_bare_cr_or_lf(data: bytes) -> None:
    expected = CTL.search(data) is not None or _bare_eol(data)
    assert http_parse._bad_head(data) == expected


@seed(20261203)
@settings(max_examples=300, deadline=None, database=None)
@given(spicy_bytes)
def test_header_names_are_tokens(line: bytes) -> None:
    name, sep, _ = line.partition(b":")
    valid = bool(sep) and http_parse.TOKEN_RE.match(name) is not None
    try:
        http_parse._parse_headers([line], http_parse.Head(), request=False)
        reason = ""
    except http_parse.HttpError as exc:
        reason = exc.reason
    name_reasons = {"obsolete line folding is not accepted", "malformed header field name"}
    if valid or not line:
        assert reason not in name_reasons
    elif line[:1] in (b" ", b"\t"):
        assert reason == "obsolete line folding is not accepted"
    else:
        assert reason == "malformed header field name"


@seed(20261204)
@settings(max_examples=300, deadline=None, database=None)
@given(spicy_bytes)
def test_request_targets_are_visible_ascii(target: bytes) -> None:
    line = b"GET " + target + b" HTTP/1.1"
    try:
        http_parse._request_line(line, http_parse.Head())
        accepted = True
    except http_parse.HttpError:
        accepted = False
    assert accepted == (b" " not in target and VISIBLE.match(target) is not None)
