"""``labfleet db upgrade``: back up, then migrate the hub schema; never start half-migrated.

States of the hub database, as read before every hub start::

    empty        never started: JupyterHub creates the schema itself
    current      at the installed JupyterHub's alembic head: nothing to do
    behind       an older revision: back up → write the marker → migrate → drop the marker
    ahead        a revision this JupyterHub does not know (a newer one wrote it): refuse
    interrupted  the marker is there: a migration began and did not finish: refuse

The marker is a one-row table *in the hub database* (so it travels with the database, also
on Kubernetes where the hub's data directory may be an emptyDir), written and committed
before the first DDL statement and dropped only after the last one. A marker left behind
means the schema may be anything between the two revisions; the hub then refuses to start
with a message that names the pre-upgrade backup and the way back
(``labfleet db upgrade --rollback``).
"""

from __future__ import annotations

import enum
import json
import os
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import create_engine, inspect, text

from labfleet.ops import schema
from labfleet.ops.backup import backup
from labfleet.ops.target import Target, redact

MARKER_TABLE = "labfleet_upgrade_in_progress"
BACKUP_DIR_ENV = "LABFLEET_BACKUP_DIR"

Say = Callable[[str], None]


class DbState(enum.Enum):
    EMPTY = "empty"
    CURRENT = "current"
    BEHIND = "behind"
    AHEAD = "ahead"
    INTERRUPTED = "interrupted"


class UpgradeError(Exception):
    """The hub must not start on this database; the message says why and what to do."""


@dataclass(frozen=True)
class DbStatus:
    state: DbState
    revision: str | None
    head: str
    marker: dict[str, str] | None = None


def read_marker(db_url: str) -> dict[str, str] | None:
    engine = create_engine(db_url)
    try:
        with engine.connect() as conn:
            if MARKER_TABLE not in inspect(conn).get_table_names():
                return None
            row = conn.execute(text(f"SELECT info FROM {MARKER_TABLE}")).first()  # noqa: S608
            data: dict[str, str] = json.loads(row[0]) if row else {}
            return data
    finally:
        engine.dispose()


def _write_marker(db_url: str, info: dict[str, str]) -> None:
    engine = create_engine(db_url)
    try:
        with engine.begin() as conn:
            conn.execute(text(f"CREATE TABLE {MARKER_TABLE} (info TEXT NOT NULL)"))
            conn.execute(
                text(f"INSERT INTO {MARKER_TABLE} (info) VALUES (:info)"),  # noqa: S608
                {"info": json.dumps(info)},
            )
    finally:
        engine.dispose()


def _drop_marker(db_url: str) -> None:
    engine = create_engine(db_url)
    try:
        with engine.begin() as conn:
            conn.execute(text(f"DROP TABLE IF EXISTS {MARKER_TABLE}"))
    finally:
        engine.dispose()


def status(db_url: str) -> DbStatus:
    head = schema.head_revision()
    if db_url.startswith("sqlite:///") and not Path(db_url.split(":///", 1)[1]).exists():
        return DbStatus(DbState.EMPTY, None, head)  # never started; do not create the file
    marker = read_marker(db_url)
    revision = schema.current_revision(db_url)
    if marker is not None:
        return DbStatus(DbState.INTERRUPTED, revision, head, marker)
    if revision is None:
        return DbStatus(DbState.EMPTY, None, head)
    if revision == head:
        return DbStatus(DbState.CURRENT, revision, head)
    if revision in schema.known_revisions():
        return DbStatus(DbState.BEHIND, revision, head)
    return DbStatus(DbState.AHEAD, revision, head)


def marker_backup(target: Target, marker: dict[str, str]) -> Path | None:
    """The pre-upgrade backup a marker names; the newest one when the marker is bare.

    On sqlite the marker table is created outside the transaction that fills it (the
    driver does not wrap DDL), so a kill in between leaves the table without its row:
    still a marker, with the details found again from the backup directory.
    """
    if marker.get("backup"):
        return Path(marker["backup"])
    found = sorted(backup_dir(target).glob("pre-upgrade-*.tar.gz"), key=lambda p: p.stat().st_mtime)
    return found[-1] if found else None


def interrupted_message(target: Target, marker: dict[str, str]) -> str:
    source, dest = marker.get("from", "?"), marker.get("to", "?")
    return (
        f"the hub database {redact(target.db_url)} is half-migrated: an upgrade from schema "
        f"{source} to {dest} started and did not finish, so the hub will not start on it. "
        f"Roll back to the backup taken just before it ({marker_backup(target, marker)}) with "
        "`labfleet db upgrade --rollback`, fix the cause (see the error above or the upgrade "
        "log), then start again."
    )


def backup_dir(target: Target) -> Path:
    configured = os.environ.get(BACKUP_DIR_ENV)
    return Path(configured) if configured else target.runtime.data_dir / "backups"


def run_alembic_upgrade(db_url: str, revision: str = "head") -> None:
    """JupyterHub's own migration scripts, through alembic's API (no `alembic` on PATH needed)."""
    import alembic.command
    import alembic.config
    from jupyterhub.dbutil import write_alembic_ini

    with tempfile.TemporaryDirectory(prefix="labfleet-alembic-") as tmp:
        ini = os.path.join(tmp, "alembic.ini")
        write_alembic_ini(ini, db_url)
        alembic.command.upgrade(alembic.config.Config(ini), revision)


def upgrade(target: Target, say: Say = print) -> DbStatus:
    """Bring the hub schema to the installed head, or raise :class:`UpgradeError`."""
    found = status(target.db_url)
    if found.state is DbState.INTERRUPTED:
        raise UpgradeError(interrupted_message(target, found.marker or {}))
    if found.state is DbState.AHEAD:
        raise UpgradeError(
            f"the hub database is at schema {found.revision}, which this JupyterHub does not "
            "know: it was written by a newer version. Install that version again, or restore "
            "a backup made with this one."
        )
    if found.state is not DbState.BEHIND:
        return found
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    folder = backup_dir(target)
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    archive = folder / f"pre-upgrade-{found.revision}-{stamp}.tar.gz"
    say(f"the hub database needs a schema upgrade ({found.revision} → {found.head})")
    backup(target, archive)
    say(f"backed it up first: {archive}")
    _write_marker(
        target.db_url,
        {
            "from": str(found.revision),
            "to": found.head,
            "backup": str(archive),
            "started": datetime.now(UTC).isoformat(timespec="seconds"),
        },
    )
    try:
        run_alembic_upgrade(target.db_url)
    except Exception as exc:
        raise UpgradeError(
            f"the schema upgrade failed: {exc}\n"
            + interrupted_message(target, read_marker(target.db_url) or {})
        ) from exc
    _drop_marker(target.db_url)
    say(f"hub database upgraded to schema {found.head}")
    return status(target.db_url)


def prepare_hub_start(data_dir: Path, config_path: Path | None, say: Say) -> bool:
    """What the supervisor runs before each hub start: False means do not start it."""
    from sqlalchemy.exc import SQLAlchemyError

    from labfleet.auth.secret_refs import SecretError
    from labfleet.ops.target import locate

    try:
        upgrade(locate(data_dir, config_path), say)
    except (UpgradeError, SecretError) as exc:
        say(f"error: {exc}")
        return False
    except SQLAlchemyError as exc:
        say(f"error: cannot check the hub database schema: {type(exc).__name__}: {exc.args[0]}")
        return False
    return True
