"""Consistent copies of live sqlite files with SQLite's online backup API."""

from __future__ import annotations

import sqlite3
import tempfile
from pathlib import Path

SQLITE_MAGIC = b"SQLite format 3\x00"
#: top-level data-dir files backed up as databases (JupyterHub's own upgrade copies end in a date)
SQLITE_SUFFIXES = (".sqlite", ".db")


def is_sqlite(path: Path) -> bool:
    try:
        with path.open("rb") as handle:
            return handle.read(16) == SQLITE_MAGIC
    except OSError:
        return False


def snapshot(path: Path) -> bytes:
    """A transactionally consistent image of the database at ``path``, taken while others write.

    ``pages=-1`` copies in one step under one read transaction, so the image is a state the
    database really had; writers wait at most that long (the hub's connections wait 5 s+).
    """
    source = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=30)
    try:
        with tempfile.TemporaryDirectory(prefix="labfleet-snap-") as tmp:
            copy_path = Path(tmp) / "copy.sqlite"
            dest = sqlite3.connect(copy_path)
            try:
                source.backup(dest, pages=-1)
            finally:
                dest.close()
            return copy_path.read_bytes()
    finally:
        source.close()


def check_integrity(data: bytes) -> str | None:
    """None when ``data`` is a sound sqlite database, else SQLite's complaint."""
    with tempfile.TemporaryDirectory(prefix="labfleet-check-") as tmp:
        path = Path(tmp) / "check.sqlite"
        path.write_bytes(data)
        try:
            conn = sqlite3.connect(path)
            try:
                row = conn.execute("PRAGMA integrity_check").fetchone()
            finally:
                conn.close()
        except sqlite3.DatabaseError as exc:
            return str(exc)
        return None if row and row[0] == "ok" else str(row)


def data_dir_databases(data_dir: Path, hub_db: Path | None) -> list[Path]:
    """sqlite files at the top of the data directory other than the hub database."""
    found = []
    for path in sorted(data_dir.iterdir()):
        if path.suffix in SQLITE_SUFFIXES and path != hub_db and is_sqlite(path):
            found.append(path)
    return found
