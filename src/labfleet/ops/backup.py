"""``labfleet backup``: a consistent snapshot of one platform, taken while it runs."""

from __future__ import annotations

import json
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import jupyterhub

import labfleet
from labfleet.ops import pg, sqlite_copy
from labfleet.ops.archive import Manifest, pack, write_atomically
from labfleet.ops.schema import current_revision
from labfleet.ops.target import Target
from labfleet.secrets import secrets_from_env

HUB_SQLITE = "db/jupyterhub.sqlite"
HUB_PGDUMP = "db/hub.pgdump"
CONFIG_MEMBER = "config/labfleet.yaml"
LAST_BACKUP = "last-backup.json"  # in the state dir
METRICS_DIR = "metrics"  # state/metrics/: point node_exporter --collector.textfile.directory here
BACKUP_PROM = "labfleet_backup.prom"

Say = Callable[[str], None]


@dataclass(frozen=True)
class BackupResult:
    path: Path
    manifest: Manifest
    size: int


def _hub_db(target: Target, members: dict[str, bytes]) -> str:
    if target.db_kind == "postgresql":
        with tempfile.TemporaryDirectory(prefix="labfleet-pgdump-") as tmp:
            out = Path(tmp) / "hub.pgdump"
            pg.dump(target.db_url, out)
            members[HUB_PGDUMP] = out.read_bytes()
        return "postgresql"
    path = target.sqlite_path
    if path is None or not path.exists():
        return "none"  # the hub never ran: nothing to copy
    members[HUB_SQLITE] = sqlite_copy.snapshot(path)
    return "sqlite"


def _secrets(target: Target, members: dict[str, bytes]) -> None:
    secrets_dir = target.runtime.secrets_dir
    if secrets_dir.is_dir():
        for path in sorted(secrets_dir.iterdir()):
            if path.is_file() and not path.name.startswith("."):
                members[f"secrets/{path.name}"] = path.read_bytes()
        return
    if target.runtime.platform == "kubernetes":  # the hub pod: secrets arrive as variables
        import os

        found = secrets_from_env(os.environ)
        for name, value in found.to_env().items():
            short = name.removeprefix("LABFLEET_SECRET_").lower()
            members[f"secrets/{short}"] = (value + "\n").encode()


def collect(target: Target) -> tuple[dict[str, bytes], Manifest]:
    """Everything the archive holds, as bytes, with its manifest (checksums come in pack)."""
    members: dict[str, bytes] = {}
    kind = _hub_db(target, members)
    data_dir = target.runtime.data_dir
    if data_dir.is_dir():
        for path in sqlite_copy.data_dir_databases(data_dir, target.sqlite_path):
            members[f"data/{path.name}"] = sqlite_copy.snapshot(path)
    _secrets(target, members)
    config = None
    if target.config_path is not None:
        members[CONFIG_MEMBER] = target.config_path.read_bytes()
        config = CONFIG_MEMBER
    revision = current_revision(target.db_url) if kind != "none" else None
    manifest = Manifest(
        labfleet_version=labfleet.__version__,
        jupyterhub_version=jupyterhub.__version__,
        created=datetime.now(UTC).isoformat(timespec="seconds"),
        hub_db_kind=kind,
        alembic_revision=revision,
        config=config,
    )
    return members, manifest


def backup_age_metrics(finished: float, size: int) -> str:
    """Prometheus text for node_exporter's textfile collector (alert on the backup's age)."""
    return (
        "# HELP labfleet_backup_last_success_timestamp_seconds When the last backup finished.\n"
        "# TYPE labfleet_backup_last_success_timestamp_seconds gauge\n"
        f"labfleet_backup_last_success_timestamp_seconds {finished:.3f}\n"
        "# HELP labfleet_backup_last_size_bytes Size of the last backup archive.\n"
        "# TYPE labfleet_backup_last_size_bytes gauge\n"
        f"labfleet_backup_last_size_bytes {size}\n"
    )


def record_backup(target: Target, path: Path, size: int) -> None:
    state = target.runtime.state_dir
    if not state.is_dir():
        return
    now = time.time()
    (state / LAST_BACKUP).write_text(json.dumps({"time": now, "path": str(path), "size": size}))
    metrics = state / METRICS_DIR
    metrics.mkdir(mode=0o755, exist_ok=True)
    tmp = metrics / f".{BACKUP_PROM}.tmp"
    tmp.write_text(backup_age_metrics(now, size))
    tmp.replace(metrics / BACKUP_PROM)  # the collector never reads half a file


def backup(target: Target, out: Path, passphrase: str | None = None) -> BackupResult:
    members, manifest = collect(target)
    blob = pack(members, manifest, passphrase)
    write_atomically(out, blob)
    record_backup(target, out.resolve(), len(blob))
    return BackupResult(out.resolve(), manifest, len(blob))
