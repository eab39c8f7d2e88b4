"""Helpers shared by command modules: config loading with plain errors, data dir option."""

from __future__ import annotations

import argparse
import os
import sys
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


def add_data_dir_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--data-dir",
        metavar="DIR",
        type=Path,
        default=Path(os.environ.get("LABFLEET_DATA_DIR", DEFAULT_DATA_DIR)),
        help="state directory: database, secrets, homes (default: ./labfleet-data)",
    )


def load_or_report(path: str | None) -> FleetConfig | None:
    """Load the config, printing problems to stderr and returning None if invalid."""
    try:
        return load_config(path)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return None
