"""The user-path bench's tables: a ratio vs stock wherever both platforms measured, and a
measurement that did not run (``--restart-users 0``...) prints no empty table (issue 16)."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench" / "user_path"))

from hubprofile import Memory
from run import Results, memory_table, report, restart_table


def _restart(healthy: float, running: int) -> dict[str, object]:
    return {"users": 10000, "running": running, "healthy_s": healthy, "servers_back_s": None}


def test_restart_and_memory_rows_carry_the_ratio_vs_stock() -> None:
    ours, stock = Results("labfleet"), Results("stock")
    ours.restart = {**_restart(1.5, 500), "lost": 0}
    stock.restart = {**_restart(4.5, 0), "lost": 0}
    ours.server_memory = [Memory(uss=28.0, pss=46.0)]
    stock.server_memory = [Memory(uss=112.0, pss=113.0)]
    restart = restart_table([ours, stock]).splitlines()
    assert restart[0].endswith("| lost | healthy ratio |")
    assert restart[2].startswith("| labfleet | 10000 | 500 | 1.50 |")
    assert restart[2].endswith("| 0 | 3.0x |") and restart[3].endswith("| 1.0x |")
    memory = memory_table([ours, stock]).splitlines()
    assert "| 4.0x |" in memory[2]


def test_measurements_that_did_not_run_print_nothing(capsys) -> None:  # type: ignore[no-untyped-def]
    ours = Results("labfleet")
    ours.restart = {**_restart(1.5, 2), "lost": 0}
    report([ours], (2, 0.1, 20.0))
    printed = capsys.readouterr().out
    assert "### Hub restart" in printed and "| — |" in printed  # no stock: no ratio
    for title in ("first output", "Bursts", "profile", "Logins", "Idle memory", "Browser"):
        assert title not in printed, title
