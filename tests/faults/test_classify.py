"""Recognising a storage fault in a real exception chain (pure; real sqlite3 errors)."""

from __future__ import annotations

import contextlib
import errno
import sqlite3
from pathlib import Path

import pytest

from labfleet.hub.storage_errors import StorageFault, classify, explain, http_status


def _db(tmp_path: Path) -> Path:
    path = tmp_path / "t.sqlite"
    with contextlib.closing(sqlite3.connect(path)) as conn:
        conn.execute("CREATE TABLE t (x)")
        conn.commit()
    return path


def test_a_locked_database_behind_a_failed_rollback_is_found(tmp_path: Path) -> None:
    path = _db(tmp_path)
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")
    try:
        conn = sqlite3.connect(path, timeout=0, isolation_level=None)
        with pytest.raises(sqlite3.OperationalError) as caught:
            try:
                conn.execute("BEGIN IMMEDIATE")
            except sqlite3.OperationalError:
                conn.execute("ROLLBACK")  # what accounts.py did: hides the cause
        assert "no transaction is active" in str(caught.value)
        problem = classify(caught.value)
        assert problem is not None and problem.fault is StorageFault.LOCKED
        assert "locked" in problem.detail
        assert http_status(problem) == 503
        conn.close()
    finally:
        holder.rollback()
        holder.close()


def test_a_read_only_database_is_found(tmp_path: Path) -> None:
    path = _db(tmp_path)
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    with contextlib.closing(conn), pytest.raises(sqlite3.OperationalError) as caught:
        conn.execute("INSERT INTO t VALUES (1)")
    problem = classify(caught.value)
    assert problem is not None and problem.fault is StorageFault.READ_ONLY
    assert "read-only" in explain(problem, tmp_path)


def test_os_errors_and_plain_ones() -> None:
    full = classify(OSError(errno.ENOSPC, "No space left on device"))
    assert full is not None and full.fault is StorageFault.FULL and http_status(full) == 507
    text = explain(full, Path("/srv/lab"))
    assert "the disk holding the data directory /srv/lab is full" in text
    assert "Nothing was changed" in text
    ro = classify(OSError(errno.EROFS, "Read-only file system"))
    assert ro is not None and ro.fault is StorageFault.READ_ONLY
    assert classify(ValueError("database or disk is full")) is None  # not from a driver
    assert classify(OSError(errno.ENOENT, "missing")) is None


def test_sqlite_unable_to_open_is_named_by_the_write_probe(tmp_path: Path) -> None:
    """A database opened before its disk went read-only cannot create its journal: SQLite
    says only "unable to open database file"; the data dir's write probe says why."""
    with pytest.raises(sqlite3.OperationalError) as caught:
        sqlite3.connect(tmp_path / "missing" / "t.sqlite").execute("SELECT 1")
    assert classify(caught.value) is None, "no probe: not a storage fault we can name"
    probed: list[bool] = []

    def read_only() -> OSError:
        probed.append(True)
        return OSError(errno.EROFS, "Read-only file system")

    problem = classify(caught.value, read_only)
    assert problem is not None and problem.fault is StorageFault.READ_ONLY
    assert problem.detail == "unable to open database file: Read-only file system"
    assert classify(caught.value, lambda: None) is None, "the data dir writes: not a fault"
    failing = classify(caught.value, lambda: OSError(errno.EIO, "Input/output error"))
    assert failing is not None and failing.fault is StorageFault.IO_ERROR
    assert http_status(failing) == 503 and "input/output errors" in explain(failing, tmp_path)
    assert classify(OSError(errno.ENOSPC, "full"), read_only) is not None
    assert len(probed) == 1, "asked only when SQLite's words are vague"
