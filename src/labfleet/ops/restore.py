"""``labfleet restore``: fill an empty data directory from a backup, or change nothing.

Everything is verified first (checksums, sqlite integrity, versions, an empty target); the
files are then written to a hidden sibling directory and renamed into place in one step, so a
bad archive or a failure half-way leaves the target exactly as it was.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import jupyterhub

import labfleet
from labfleet.ops import pg, sqlite_copy
from labfleet.ops.archive import ArchiveError, Manifest, unpack
from labfleet.ops.backup import CONFIG_MEMBER, HUB_PGDUMP, HUB_SQLITE
from labfleet.ops.schema import known_revisions
from labfleet.ops.target import redact

Say = Callable[[str], None]


class RestoreError(Exception):
    """Restore refused; the target is untouched."""


@dataclass
class RestoreResult:
    data_dir: Path
    manifest: Manifest
    config: Path | None
    notes: list[str] = field(default_factory=list)


def version_problems(manifest: Manifest) -> list[str]:
    problems = []
    if manifest.labfleet_version != labfleet.__version__:
        problems.append(
            f"made by labfleet {manifest.labfleet_version}; this is {labfleet.__version__}"
        )
    if manifest.jupyterhub_version != jupyterhub.__version__:
        problems.append(
            f"made with JupyterHub {manifest.jupyterhub_version}; "
            f"installed is {jupyterhub.__version__}"
        )
    rev = manifest.alembic_revision
    if rev and rev not in known_revisions():
        problems.append(f"its database schema {rev} is newer than this JupyterHub knows")
    return problems


def _check_target(data_dir: Path) -> None:
    if data_dir.exists() and (not data_dir.is_dir() or any(data_dir.iterdir())):
        raise RestoreError(f"{data_dir} is not empty: restore fills an empty data directory only")


def _write_private(path: Path, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)


def _stage(members: dict[str, bytes], staging: Path) -> Path | None:
    """Lay the files out as a data directory under ``staging``; returns the config path."""
    (staging / "secrets").mkdir(mode=0o700)
    (staging / "state").mkdir(mode=0o700)
    config = None
    for name, data in members.items():
        top, _, rest = name.partition("/")
        if name == HUB_SQLITE:
            _write_private(staging / "jupyterhub.sqlite", data)
        elif top == "data" and "/" not in rest:
            _write_private(staging / rest, data)
        elif top == "secrets" and "/" not in rest:
            _write_private(staging / "secrets" / rest, data)
        elif name == CONFIG_MEMBER:
            config = staging / "labfleet.yaml"
            _write_private(config, data)
        elif name != HUB_PGDUMP:
            raise ArchiveError(f"unexpected member {name!r}")
    return config


def _restore_postgres(dump: bytes, db_url: str, force: bool) -> None:
    if pg.table_names(db_url) and not force:
        raise RestoreError(
            f"the database {redact(db_url)} is not empty; restore into an empty database "
            "(or give --force to replace its contents)"
        )
    with tempfile.TemporaryDirectory(prefix="labfleet-pgrestore-") as tmp:
        path = Path(tmp) / "hub.pgdump"
        path.write_bytes(dump)
        os.chmod(tmp, 0o755)  # noqa: S103 - pg_restore may run as another account
        pg.restore(db_url, path, clean=force)


def restore(
    blob: bytes,
    data_dir: Path,
    *,
    passphrase: str | None = None,
    force: bool = False,
    db_url: str | None = None,
) -> RestoreResult:
    data_dir = data_dir.resolve()
    _check_target(data_dir)
    manifest, members = unpack(blob, passphrase)
    problems = version_problems(manifest)
    if problems and not force:
        raise RestoreError(
            "version mismatch: the backup was "
            + "; ".join(problems)
            + ". Give --force to restore anyway, then run `labfleet db upgrade`."
        )
    for name, data in members.items():
        if name.endswith((".sqlite", ".db")):
            complaint = sqlite_copy.check_integrity(data)
            if complaint:
                raise ArchiveError(f"{name} is not a sound database: {complaint}")
    if manifest.hub_db_kind == "postgresql" and not db_url:
        raise RestoreError(
            "this backup holds a PostgreSQL hub database: give --db-url URL of an empty database"
        )
    data_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{data_dir.name}.restore-", dir=data_dir.parent))
    result = RestoreResult(data_dir, manifest, None)
    try:
        os.chmod(staging, 0o700)
        config = _stage(members, staging)
        if manifest.hub_db_kind == "postgresql" and db_url:
            _restore_postgres(members[HUB_PGDUMP], db_url, force)
            result.notes.append(
                f"the hub database was restored into {redact(db_url)}: point hub.db_url "
                "(or $LABFLEET_DB_URL) at it"
            )
        _check_target(data_dir)  # still empty: nobody raced us
        os.rename(staging, data_dir)  # POSIX: replaces an empty directory in one step
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    result.config = data_dir / config.name if config else None
    for problem in problems:
        result.notes.append(f"restored despite: {problem}")
    return result
