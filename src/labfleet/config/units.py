"""Sizes and durations as users write them ("4G", "512Mi", "30m", 3600).

Pydantic annotated types so that every section parses them the same way and
errors carry a hint ("'4 G' is not a size; did you mean '4G'?").
"""

from __future__ import annotations

import re
from typing import Annotated, Any

from pydantic import BeforeValidator, PlainSerializer, WithJsonSchema

_SIZE_UNITS = {
    "": 1,
    "k": 10**3,
    "m": 10**6,
    "g": 10**9,
    "t": 10**12,
    "ki": 2**10,
    "mi": 2**20,
    "gi": 2**30,
    "ti": 2**40,
}
_SIZE_RE = re.compile(r"(\d+(?:\.\d+)?)([kKmMgGtT]i?)?[bB]?")
_DURATION_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_DURATION_RE = re.compile(r"(\d+)([smhd])")


class UnitError(ValueError):
    """A value that is not a size or a duration; the message carries a hint."""


def parse_size(value: Any) -> int:
    """Bytes from ``4G`` (10^9), ``4Gi`` (2^30), ``512M``, ``1.5G`` or an int."""
    if isinstance(value, bool):
        raise UnitError(f"{value!r} is not a size; write e.g. '4G' or '512Mi'")
    if isinstance(value, int):
        if value < 0:
            raise UnitError(f"{value!r} is not a size; sizes cannot be negative")
        return value
    if not isinstance(value, str):
        raise UnitError(f"{value!r} is not a size; write e.g. '4G' or '512Mi'")
    match = _SIZE_RE.fullmatch(value.strip())
    if match is None or value != value.strip():
        squashed = re.sub(r"\s+", "", value)
        hint = (
            f"did you mean {squashed!r}?"
            if _SIZE_RE.fullmatch(squashed)
            else ("write e.g. '4G' or '512Mi'")
        )
        raise UnitError(f"{value!r} is not a size; {hint}")
    number, unit = match.group(1), (match.group(2) or "").lower()
    return int(float(number) * _SIZE_UNITS[unit])


def format_size(n: int) -> str:
    """Shortest exact binary or decimal spelling, for rendering (``2Gi``)."""
    for suffix, factor in (("Ti", 2**40), ("Gi", 2**30), ("Mi", 2**20), ("Ki", 2**10)):
        if n and n % factor == 0:
            return f"{n // factor}{suffix}"
    for suffix, factor in (("T", 10**12), ("G", 10**9), ("M", 10**6), ("k", 10**3)):
        if n and n % factor == 0:
            return f"{n // factor}{suffix}"
    return str(n)


def parse_duration(value: Any) -> int:
    """Seconds from ``90``, ``"90s"``, ``"30m"``, ``"1h30m"``, ``"2d"``."""
    if isinstance(value, bool):
        raise UnitError(f"{value!r} is not a duration; write e.g. '30m' or 3600")
    if isinstance(value, int):
        if value < 0:
            raise UnitError(f"{value!r} is not a duration; durations cannot be negative")
        return value
    if isinstance(value, str):
        text = value.strip().lower()
        if text.isdigit():
            return int(text)
        parts = _DURATION_RE.findall(text)
        if parts and "".join(n + u for n, u in parts) == text:
            return sum(int(n) * _DURATION_UNITS[u] for n, u in parts)
        squashed = re.sub(r"\s+", "", text)
        if squashed != text and _DURATION_RE.fullmatch(squashed):
            raise UnitError(f"{value!r} is not a duration; did you mean {squashed!r}?")
    raise UnitError(f"{value!r} is not a duration; write e.g. '90s', '30m', '1h' or 3600")


Size = Annotated[
    int,
    BeforeValidator(parse_size),
    PlainSerializer(format_size, return_type=str, when_used="json"),
    WithJsonSchema(
        {
            "type": ["string", "integer"],
            "pattern": r"^\d+(\.\d+)?([kKmMgGtT]i?)?[bB]?$",
            "examples": ["512Mi", "4G"],
        }
    ),
]
Duration = Annotated[
    int,
    BeforeValidator(parse_duration),
    WithJsonSchema({"type": ["string", "integer"], "examples": ["30m", "1h", 3600]}),
]
