"""The hub's SQLite database in write-ahead-log mode.

JupyterHub commits several times per login and per spawn, on its one event loop. In
SQLite's default rollback-journal mode every commit syncs the journal and the database
(about 12 ms on the development disk, a third of the hub's samples in a 20-member burst,
bench/README.md); in WAL mode a commit appends to one file and syncs it once (0.7 ms), with
the same durability (``synchronous`` stays FULL: a commit that returned survives a power
loss) and the same crash safety. Readers no longer wait for a writer either.

The mode is a property of the database file and sticks, so turning it on is one pragma when
the hub connects. What changes around it:

* a ``-wal`` and a ``-shm`` file live next to the database while the hub runs (the data
  dir's permission pass covers them; SQLite gives them the database's mode);
* a copy must use SQLite's backup API, never copy the file of a live database (the
  backups, ``labfleet db upgrade``'s included, go through ``ops/sqlite_copy.snapshot``);
* the database must not live on a network filesystem (WAL needs shared memory), which
  SQLite on NFS never did well anyway: use PostgreSQL there.

Only SQLite URLs are touched; PostgreSQL hubs are unchanged.
"""

from __future__ import annotations

import logging
import sqlite3
from typing import Any

log = logging.getLogger("labfleet.hub")

_installed = False


def is_sqlite_url(db_url: str) -> bool:
    return db_url.startswith("sqlite:")


def use_wal(dbapi_connection: Any, _record: Any = None) -> None:
    """SQLAlchemy ``connect`` hook: put a new SQLite connection's database in WAL mode.

    A database that cannot switch (read-only directory, locked by another writer) stays in
    its mode and the hub starts as before; the storage-fault pages name the cause of any
    write that then fails.
    """
    if not isinstance(dbapi_connection, sqlite3.Connection):
        return
    try:
        mode = dbapi_connection.execute("PRAGMA journal_mode=WAL").fetchone()
    except sqlite3.Error as exc:
        log.warning("hub database stays in its journal mode (WAL not possible: %s)", exc)
        return
    if mode and str(mode[0]).lower() != "wal":
        log.warning("hub database stays in journal mode %s (WAL not possible here)", mode[0])


def install(db_url: str) -> bool:
    """Register :func:`use_wal` for every engine of this process if the hub DB is SQLite.

    The hub process opens one engine (JupyterHub's); registering on the class reaches it
    before its first connection, without reaching into JupyterHub. Returns whether it did.
    """
    global _installed
    if not is_sqlite_url(db_url):
        return False
    if not _installed:
        from sqlalchemy import event
        from sqlalchemy.engine import Engine

        event.listen(Engine, "connect", use_wal)
        _installed = True
    return True
