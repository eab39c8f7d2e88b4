"""``labfleet service install|uninstall|status``: run ``labfleet up`` under systemd."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from labfleet.cli.common import EXIT_FAILURE, EXIT_OK, add_config_option, add_data_dir_option


def _common(parser: argparse.ArgumentParser) -> None:
    add_data_dir_option(parser)
    parser.add_argument(
        "--name", help="unit name: labfleet-NAME.service (default: from the data dir)"
    )
    parser.add_argument(
        "--output",
        metavar="FILE",
        type=Path,
        help="unit file path (default: /etc/systemd/system/labfleet-NAME.service)",
    )


def register(subparsers: Any) -> None:
    service = subparsers.add_parser("service", help="a systemd unit that runs labfleet up")
    commands = service.add_subparsers(dest="service_command", metavar="COMMAND", required=True)
    install = commands.add_parser("install", help="write (and enable) the unit")
    _common(install)
    add_config_option(install)
    install.add_argument("--ip", default="127.0.0.1", help="public address (default 127.0.0.1)")
    install.add_argument("--port", type=int, default=8000, help="public port (default 8000)")
    install.add_argument("--no-start", action="store_true", help="write it only")
    install.set_defaults(func=run_install)
    uninstall = commands.add_parser("uninstall", help="stop, disable and remove the unit")
    _common(uninstall)
    uninstall.set_defaults(func=run_uninstall)
    status = commands.add_parser("status", help="is the unit installed and running")
    _common(status)
    status.set_defaults(func=run_status)


def _unit_name(args: argparse.Namespace) -> str:
    from labfleet.ops.service import name_for

    return f"labfleet-{args.name or name_for(args.data_dir)}.service"


def run_install(args: argparse.Namespace) -> int:
    from labfleet.ops.service import default_spec, install

    config = Path(args.config) if args.config else None
    spec = default_spec(args.data_dir, config, args.name, args.ip, args.port)
    try:
        notes = install(spec, args.output, start=not args.no_start)
    except (OSError, RuntimeError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_FAILURE
    for note in notes:
        print(note)
    return EXIT_OK


def run_uninstall(args: argparse.Namespace) -> int:
    from labfleet.ops.service import uninstall

    try:
        notes = uninstall(_unit_name(args), args.output)
    except OSError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_FAILURE
    for note in notes:
        print(note)
    return EXIT_OK


def run_status(args: argparse.Namespace) -> int:
    from labfleet.ops.service import unit_status

    installed, line = unit_status(_unit_name(args), args.output)
    print(line)
    return EXIT_OK if installed else EXIT_FAILURE
