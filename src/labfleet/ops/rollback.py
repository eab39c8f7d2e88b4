"""``labfleet db upgrade --rollback``: put the pre-upgrade hub database back in place.

Used after an interrupted migration: the marker names the backup taken just before it.
The database is replaced as a whole (sqlite: the file, atomically; PostgreSQL: every
table dropped, then ``pg_restore`` in one transaction), which also removes the marker.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from sqlalchemy import create_engine, inspect, text

from labfleet.ops import pg
from labfleet.ops.archive import ArchiveError, unpack
from labfleet.ops.backup import HUB_PGDUMP, HUB_SQLITE
from labfleet.ops.migrate import UpgradeError, marker_backup, read_marker
from labfleet.ops.target import Target


def _drop_all_tables(db_url: str) -> None:
    engine = create_engine(db_url)
    try:
        with engine.begin() as conn:
            for name in inspect(conn).get_table_names():
                conn.execute(text(f'DROP TABLE IF EXISTS "{name}" CASCADE'))
    finally:
        engine.dispose()


def rollback(target: Target, archive: Path | None = None, passphrase: str | None = None) -> Path:
    """Restore the hub database from ``archive`` (default: the marker's backup)."""
    if archive is None:
        marker = read_marker(target.db_url)
        if marker is None:
            raise UpgradeError("no interrupted upgrade to roll back (and no --from archive given)")
        archive = marker_backup(target, marker)
        if archive is None:
            raise UpgradeError("the interrupted upgrade left no backup here: give --from FILE")
    try:
        _, members = unpack(archive.read_bytes(), passphrase)
    except (OSError, ArchiveError) as exc:
        raise UpgradeError(f"cannot read the pre-upgrade backup {archive}: {exc}") from exc
    if target.db_kind == "sqlite":
        path = target.sqlite_path
        if path is None or HUB_SQLITE not in members:
            raise UpgradeError(f"{archive} holds no sqlite hub database")
        fd, tmp = tempfile.mkstemp(prefix=".rollback-", dir=path.parent)
        with os.fdopen(fd, "wb") as handle:
            handle.write(members[HUB_SQLITE])
        os.chmod(tmp, 0o600)
        os.replace(tmp, path)
        return archive
    if HUB_PGDUMP not in members:
        raise UpgradeError(f"{archive} holds no PostgreSQL hub database")
    _drop_all_tables(target.db_url)
    with tempfile.TemporaryDirectory(prefix="labfleet-rollback-") as tmp_dir:
        dump = Path(tmp_dir) / "hub.pgdump"
        dump.write_bytes(members[HUB_PGDUMP])
        pg.restore(target.db_url, dump)
    return archive
