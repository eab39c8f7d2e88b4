"""The user-path bench's first-output table carries a ratio vs stock (issue 16)."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench" / "user_path"))

from api_path import PathTiming, first_output_table


def _timing(total: float, error: str = "") -> PathTiming:
    quarter = total / 4
    steps = {s: quarter for s in ("login", "ready", "kernel", "output")}
    return PathTiming("m", steps=steps, error=error)


def test_each_platform_row_says_how_many_times_faster_than_stock() -> None:
    table = first_output_table(
        [
            ("labfleet", [_timing(0.5), _timing(0.5), _timing(9, error="boom")]),
            ("stock", [_timing(4.0), _timing(4.0)]),
        ]
    )
    header, _rule, labfleet, stock = table.splitlines()
    assert header.endswith("| total p50 vs stock |")
    assert labfleet.startswith("| labfleet | 3 |") and labfleet.endswith("| 1 | 8.0x |")
    assert stock.endswith("| 0 | 1.0x |")


def test_no_stock_run_leaves_the_ratio_empty() -> None:
    row = first_output_table([("labfleet", [_timing(0.5)])]).splitlines()[-1]
    assert row.endswith("| 0 | — |")
