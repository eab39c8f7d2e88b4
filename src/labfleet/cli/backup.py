"""``labfleet backup`` and ``labfleet restore``."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

from labfleet.cli.common import (
    EXIT_BAD_INPUT,
    EXIT_FAILURE,
    EXIT_OK,
    add_config_option,
    add_data_dir_option,
)
from labfleet.config.load import ConfigError

PASSPHRASE_ENV = "LABFLEET_BACKUP_PASSPHRASE"  # noqa: S105 - a variable name


def add_passphrase_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--passphrase-file",
        metavar="FILE",
        type=Path,
        help=f"encrypt/decrypt with the passphrase in FILE (or ${PASSPHRASE_ENV})",
    )


def read_passphrase(args: argparse.Namespace) -> str | None:
    if args.passphrase_file:
        value: str = args.passphrase_file.read_text().strip()
        if not value:
            raise ValueError(f"{args.passphrase_file} is empty")
        return value
    return os.environ.get(PASSPHRASE_ENV) or None


def register(subparsers: Any) -> None:
    backup = subparsers.add_parser(
        "backup", help="snapshot hub database, accounts, secrets and config (while it runs)"
    )
    add_config_option(backup)
    add_data_dir_option(backup)
    backup.add_argument("-o", "--output", metavar="FILE", type=Path, required=True)
    add_passphrase_option(backup)
    backup.set_defaults(func=run_backup)

    restore = subparsers.add_parser("restore", help="fill an empty data directory from a backup")
    restore.add_argument("archive", metavar="FILE", type=Path)
    add_data_dir_option(restore)
    add_passphrase_option(restore)
    restore.add_argument(
        "--db-url",
        metavar="URL",
        default=os.environ.get("LABFLEET_DB_URL"),
        help="empty PostgreSQL database for a PostgreSQL backup (default: $LABFLEET_DB_URL)",
    )
    restore.add_argument(
        "--force", action="store_true", help="restore a backup made by other versions"
    )
    restore.set_defaults(func=run_restore)


def _err(message: str) -> None:
    print(f"error: {message}", file=sys.stderr)


def run_backup(args: argparse.Namespace) -> int:
    from labfleet.ops.backup import backup
    from labfleet.ops.pg import PostgresError
    from labfleet.ops.target import locate

    try:
        passphrase = read_passphrase(args)
        target = locate(args.data_dir, args.config)
    except (ConfigError, ValueError, OSError) as exc:
        _err(str(exc))
        return EXIT_BAD_INPUT
    try:
        result = backup(target, args.output, passphrase)
    except (PostgresError, OSError) as exc:
        _err(f"backup failed: {exc}")
        return EXIT_FAILURE
    if result.manifest.hub_db_kind == "none":
        print(
            f"warning: no hub database at {target.db_url} (has the hub run here? for a "
            "PostgreSQL hub give -c with its hub.db_url, or $LABFLEET_DB_URL)",
            file=sys.stderr,
        )
    what = "encrypted " if passphrase else ""
    print(
        f"wrote {what}backup {result.path} ({result.size} bytes, hub database: "
        f"{result.manifest.hub_db_kind}, {len(result.manifest.files)} files)"
    )
    return EXIT_OK


def run_restore(args: argparse.Namespace) -> int:
    from labfleet.ops.archive import ArchiveError
    from labfleet.ops.pg import PostgresError
    from labfleet.ops.restore import RestoreError, restore

    try:
        passphrase = read_passphrase(args)
        blob = args.archive.read_bytes()
    except (ValueError, OSError) as exc:
        _err(str(exc))
        return EXIT_BAD_INPUT
    try:
        result = restore(
            blob, args.data_dir, passphrase=passphrase, force=args.force, db_url=args.db_url
        )
    except (ArchiveError, RestoreError) as exc:
        _err(f"{exc}; nothing was restored")
        return EXIT_FAILURE
    except (PostgresError, OSError) as exc:
        _err(f"restore failed: {exc}; nothing was restored")
        return EXIT_FAILURE
    for note in result.notes:
        print(f"note: {note}", file=sys.stderr)
    start = f"labfleet up --data-dir {result.data_dir}"
    if result.config:
        start += f" -c {result.config}"
    print(f"restored into {result.data_dir}; start it with: {start}")
    return EXIT_OK
