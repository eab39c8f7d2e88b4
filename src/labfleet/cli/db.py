"""``labfleet db status|upgrade``: the hub database schema, before and after an upgrade.

Reads the same variables and config as the hub (``LABFLEET_DATA_DIR``, ``LABFLEET_CONFIG``,
``LABFLEET_DB_URL``, ``hub.db_url``), so a Kubernetes init container with the hub's
environment runs ``labfleet db upgrade`` with no arguments.
"""

from __future__ import annotations

import argparse
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


def register(subparsers: Any) -> None:
    db = subparsers.add_parser("db", help="hub database schema: status, upgrade, rollback")
    commands = db.add_subparsers(dest="db_command", metavar="COMMAND", required=True)
    show = commands.add_parser("status", help="schema revision, and whether an upgrade is due")
    add_config_option(show)
    add_data_dir_option(show)
    show.set_defaults(func=run_status)
    up = commands.add_parser(
        "upgrade", help="back up, then migrate the hub schema (the hub start does this too)"
    )
    add_config_option(up)
    add_data_dir_option(up)
    up.add_argument(
        "--rollback",
        action="store_true",
        help="after an interrupted upgrade: put back the database backed up just before it",
    )
    up.add_argument(
        "--from",
        dest="archive",
        metavar="FILE",
        type=Path,
        help="with --rollback: this backup instead of the one the interrupted upgrade names",
    )
    up.set_defaults(func=run_upgrade)


def _locate(args: argparse.Namespace) -> Any:
    from labfleet.auth.secret_refs import SecretError
    from labfleet.config.load import ConfigError
    from labfleet.ops.target import locate

    try:
        return locate(args.data_dir, args.config)
    except (ConfigError, SecretError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return None


def run_status(args: argparse.Namespace) -> int:
    from labfleet.ops.migrate import status
    from labfleet.ops.target import redact

    target = _locate(args)
    if target is None:
        return EXIT_BAD_INPUT
    from sqlalchemy.exc import SQLAlchemyError

    try:
        found = status(target.db_url)
    except SQLAlchemyError as exc:
        print(f"error: cannot reach the hub database: {exc.args[0]}", file=sys.stderr)
        return EXIT_FAILURE
    print(f"database: {redact(target.db_url)}")
    print(f"schema:   {found.revision or '(empty)'}  (this JupyterHub: {found.head})")
    print(f"state:    {found.state.value}")
    if found.marker:
        print(f"upgrade started {found.marker.get('started')}, backup {found.marker.get('backup')}")
    return EXIT_OK if found.state.value in ("empty", "current") else EXIT_FAILURE


def _say(line: str) -> None:
    print(f"[labfleet] {line}", file=sys.stderr, flush=True)


def run_upgrade(args: argparse.Namespace) -> int:
    from sqlalchemy.exc import SQLAlchemyError

    from labfleet.ops.migrate import UpgradeError, upgrade
    from labfleet.ops.pg import PostgresError
    from labfleet.ops.rollback import rollback

    target = _locate(args)
    if target is None:
        return EXIT_BAD_INPUT
    try:
        if args.rollback:
            used = rollback(target, args.archive)
            _say(f"the hub database is back as it was before the upgrade (from {used})")
            return EXIT_OK
        found = upgrade(target, _say)
    except (UpgradeError, PostgresError) as exc:  # PostgresError: e.g. no pg_dump for the backup
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_FAILURE
    except SQLAlchemyError as exc:
        print(f"error: cannot reach the hub database: {exc.args[0]}", file=sys.stderr)
        return EXIT_FAILURE
    revision = found.revision or "(empty: the hub creates it)"
    _say(f"hub database schema: {revision} ({found.state.value})")
    return EXIT_OK
