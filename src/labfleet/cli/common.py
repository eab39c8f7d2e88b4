"""Helpers shared by command modules: config loading with plain errors, data dir option."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Mapping
from pathlib import Path

from labfleet.config.load import ConfigError, load_config
from labfleet.config.model import FleetConfig

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_BAD_INPUT = 2
DEFAULT_DATA_DIR = "labfleet-data"


def add_config_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "-c",
        "--config",
        metavar="FILE",
        default=os.environ.get("LABFLEET_CONFIG"),
        help="labfleet.yaml (default: embedded defaults, or $LABFLEET_CONFIG)",
    )


EXIT_NOT_RUNNING = 3

#: commands that make a data directory on purpose (``up`` on its first run, restore, service)
CREATES_DATA_DIR = frozenset({"up", "restore", "service"})
#: commands that only look (a missing directory is an answer, not an error)
ONLY_LOOKS = frozenset({"status", "logs"})


def add_data_dir_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--data-dir",
        metavar="DIR",
        type=Path,
        default=None,
        help="state directory: database, secrets, homes (default: $LABFLEET_DATA_DIR, "
        "else the running platform's, else ./labfleet-data)",
    )
    parser.add_argument(
        "--init",
        action="store_true",
        help="allow creating a new data directory at ./labfleet-data",
    )


def find_data_dir(
    given: Path | None, environ: Mapping[str, str] | None = None, *, use_running: bool = True
) -> tuple[Path, str]:
    """(data dir, where it came from): --data-dir, $LABFLEET_DATA_DIR, running, ./labfleet-data."""
    from labfleet.up.record import running_data_dir

    env = os.environ if environ is None else environ
    if given is not None:
        return given, "--data-dir"
    if env.get("LABFLEET_DATA_DIR"):
        return Path(env["LABFLEET_DATA_DIR"]), "$LABFLEET_DATA_DIR"
    running = running_data_dir(env) if use_running else None
    if running is not None:
        return running, "the running platform"
    return Path(DEFAULT_DATA_DIR), "the default ./labfleet-data"


def is_data_dir(path: Path) -> bool:
    return (
        (path / "secrets").is_dir()
        or (path / "state").is_dir()
        or (path / "accounts.sqlite").exists()
    )


def resolve_data_dir(args: argparse.Namespace) -> int | None:
    """Set ``args.data_dir``; an exit code when the command must not go on.

    Only an implicit ``./labfleet-data`` that does not exist yet is refused (a
    command run from the wrong directory would otherwise quietly start a new,
    empty platform there); a directory named with ``--data-dir`` or
    ``$LABFLEET_DATA_DIR`` is what its user asked for.
    """
    if not hasattr(args, "data_dir"):
        return None
    command = getattr(args, "command", None)
    path, source = find_data_dir(args.data_dir, use_running=command != "up")
    args.data_dir = path
    args.data_dir_source = source
    if command in CREATES_DATA_DIR or command in ONLY_LOOKS or is_data_dir(path):
        return None
    if source.startswith("the default") and not getattr(args, "init", False):
        print(
            f"error: no labfleet data directory here ({path.resolve()} does not exist) and no "
            "platform is running; this command would create a new, empty one.\n"
            "  point at yours with --data-dir DIR or $LABFLEET_DATA_DIR, "
            "or pass --init to create it here",
            file=sys.stderr,
        )
        return EXIT_BAD_INPUT
    if not getattr(args, "init", False):
        print(f"note: {path} is a new data directory ({source})", file=sys.stderr)
    return None


def report_storage_fault(exc: BaseException, args: argparse.Namespace) -> int | None:
    """Print a full disk, read-only data dir or locked database in plain words.

    The exit code to end with, or None when ``exc`` is no storage fault (the
    caller re-raises it). The traceback would show the *last* error of the
    chain (e.g. "cannot rollback - no transaction is active"), not its cause.
    """
    from labfleet.hub.free_space import write_probe
    from labfleet.hub.storage_errors import classify, explain

    where = getattr(args, "data_dir", None)
    problem = classify(exc, (lambda: write_probe(where)) if where else None)
    if problem is None:
        return None
    print(f"error: {explain(problem, where.resolve() if where else None)}", file=sys.stderr)
    return EXIT_FAILURE  # a runtime failure, not bad input


def load_or_report(path: str | None) -> FleetConfig | None:
    """Load the config, printing problems to stderr and returning None if invalid."""
    try:
        return load_config(path)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return None
