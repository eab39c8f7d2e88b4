from __future__ import annotations

import pytest

from labfleet.config.units import UnitError, format_size, parse_duration, parse_size


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("4G", 4 * 10**9),
        ("4Gi", 4 * 2**30),
        ("512M", 512 * 10**6),
        ("512Mi", 512 * 2**20),
        ("1.5G", 1_500_000_000),
        ("100", 100),
        (2048, 2048),
        ("2gb", 2 * 10**9),
    ],
)
def test_sizes(text: object, expected: int) -> None:
    assert parse_size(text) == expected


@pytest.mark.parametrize(("text", "hint"), [("4 G", "did you mean '4G'?"), ("lots", "e.g.")])
def test_bad_sizes_hint(text: str, hint: str) -> None:
    with pytest.raises(UnitError, match=hint):
        parse_size(text)


@pytest.mark.parametrize("bad", [-1, True, None, "4G\n", "G4", [1]])
def test_sizes_refuse(bad: object) -> None:
    with pytest.raises(UnitError):
        parse_size(bad)


def test_format_size_round_trip() -> None:
    for n in (2**30, 4 * 10**9, 512 * 2**20, 1234):
        assert parse_size(format_size(n)) == n


@pytest.mark.parametrize(
    ("text", "expected"),
    [(90, 90), ("90", 90), ("90s", 90), ("30m", 1800), ("1h30m", 5400), ("2d", 172800)],
)
def test_durations(text: object, expected: int) -> None:
    assert parse_duration(text) == expected


@pytest.mark.parametrize("bad", ["30 m", "1x", "m", "", -5, False, "1h\n30m"])
def test_bad_durations(bad: object) -> None:
    with pytest.raises(UnitError):
        parse_duration(bad)
