"""The hub database goes to WAL mode when JupyterHub's engine connects (hub/sqlite_journal.py)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from sqlalchemy import create_engine, text

from labfleet.hub import sqlite_journal


def _mode(path: Path) -> str:
    conn = sqlite3.connect(path)
    try:
        return str(conn.execute("PRAGMA journal_mode").fetchone()[0])
    finally:
        conn.close()


def test_an_sqlite_hub_database_is_switched_to_wal(tmp_path: Path) -> None:
    path = tmp_path / "jupyterhub.sqlite"
    url = f"sqlite:///{path}"
    assert sqlite_journal.install(url)
    engine = create_engine(url)
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE t (x INTEGER)"))
        conn.execute(text("INSERT INTO t VALUES (1)"))
    engine.dispose()
    assert _mode(path) == "wal"  # the mode sticks to the file, seen from a plain connection


def test_postgres_urls_are_left_alone() -> None:
    assert not sqlite_journal.install("postgresql://hub@db/jupyterhub")


def test_a_database_that_cannot_switch_keeps_working(tmp_path: Path) -> None:
    path = tmp_path / "locked.sqlite"
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("CREATE TABLE t (x INTEGER)")
    holder.execute("BEGIN EXCLUSIVE")  # another writer: the switch cannot take the lock
    other = sqlite3.connect(path, timeout=0)
    try:
        sqlite_journal.use_wal(other)  # logs a warning, raises nothing
    finally:
        other.close()
        holder.execute("ROLLBACK")
        holder.close()
    assert _mode(path) == "delete"
