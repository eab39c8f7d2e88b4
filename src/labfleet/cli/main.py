"""Entry point: build the argument parser from the command modules and dispatch.

Each command module exposes ``register(subparsers)``, which adds its
sub-commands and sets ``func`` (a callable taking the parsed namespace and
returning an exit code). Exit codes: 0 ok, 1 runtime failure, 2 bad input.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from importlib import import_module

from labfleet import __version__
from labfleet.cli.common import report_storage_fault, resolve_data_dir

#: Command modules, in help order. Each must define ``register``.
COMMAND_MODULES = (
    "labfleet.cli.up",
    "labfleet.cli.configcmds",
    "labfleet.cli.users",
    "labfleet.cli.kube",
    "labfleet.cli.backup",
    "labfleet.cli.db",
    "labfleet.cli.rotate",
    "labfleet.cli.service",
    "labfleet.cli.reload",
    "labfleet.cli.logs",
    "labfleet.cli.images",
    "labfleet.cli.smoke",
    "labfleet.cli.envs",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="labfleet",
        description="A multi-user Jupyter platform from one typed config file.",
    )
    parser.add_argument("--version", action="version", version=f"labfleet {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        try:
            module = import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name == name:
                continue  # command group not built yet
            raise
        module.register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    func = getattr(args, "func", None)
    if func is None:
        parser.print_help(sys.stderr)
        return 2
    refused = resolve_data_dir(args)
    if refused is not None:
        return refused
    try:
        code: int = func(args)
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # `labfleet schema | head`: the reader stopped reading; not an error
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except Exception as exc:  # a full disk, read-only dir or locked DB: say so, no traceback
        reported = report_storage_fault(exc, args)
        if reported is None:
            raise
        return reported
    return code


if __name__ == "__main__":
    sys.exit(main())
