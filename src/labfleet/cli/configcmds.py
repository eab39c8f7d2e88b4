"""``labfleet init``, ``check`` and ``schema``: write, validate and describe the config."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from labfleet.cli.common import EXIT_BAD_INPUT, EXIT_FAILURE, EXIT_OK, load_or_report
from labfleet.config.schema import json_schema
from labfleet.config.starter import STARTER_CONFIG
from labfleet.hub.extra_config import check_extra_config


def register(subparsers: Any) -> None:
    init = subparsers.add_parser("init", help="write a commented starter labfleet.yaml")
    init.add_argument("path", nargs="?", default="labfleet.yaml", type=Path)
    init.add_argument("--force", action="store_true", help="overwrite an existing file")
    init.set_defaults(func=run_init)

    check = subparsers.add_parser("check", help="validate a config file (exit 2 if invalid)")
    check.add_argument("path", nargs="?", default="labfleet.yaml")
    check.add_argument(
        "--no-machine",
        dest="machine",
        action="store_false",
        help="skip the checks against this machine (CPUs, memory, GPUs, environments)",
    )
    check.set_defaults(func=run_check)

    schema = subparsers.add_parser("schema", help="print the JSON Schema of labfleet.yaml")
    schema.set_defaults(func=run_schema)


def run_init(args: argparse.Namespace) -> int:
    path: Path = args.path
    if path.exists() and not args.force:
        print(f"error: {path} exists; use --force to overwrite it", file=sys.stderr)
        return EXIT_FAILURE
    path.write_text(STARTER_CONFIG, encoding="utf-8")
    print(f"wrote {path}; edit it, then run: labfleet check {path} && labfleet up -c {path}")
    return EXIT_OK


def run_check(args: argparse.Namespace) -> int:
    config = load_or_report(args.path)
    if config is None:
        return EXIT_BAD_INPUT
    problems = check_extra_config(config.hub.extra_config)
    from labfleet.kube.audit_checks import check_warnings

    for warning in check_warnings(config):
        print(f"warning: {warning}", file=sys.stderr)
    if "kubernetes" in config.model_fields_set:  # only files meant for a cluster
        from labfleet.kube.checks import kube_warnings

        for warning in kube_warnings(config):
            print(f"warning (kubernetes): {warning}", file=sys.stderr)
    if args.machine:
        from labfleet.cli.common import find_data_dir
        from labfleet.up.status import machine_check

        errors, warnings = machine_check(config, find_data_dir(None)[0])  # its environments
        problems += errors
        for warning in warnings:
            print(f"warning (this machine): {warning}", file=sys.stderr)
    if problems:
        print(f"error: {args.path} is not a valid labfleet config:", file=sys.stderr)
        for problem in problems:
            print(f"  {problem}", file=sys.stderr)
        return EXIT_BAD_INPUT
    print(f"{args.path}: ok ({len(config.profiles)} profile(s), auth: {config.auth.kind})")
    return EXIT_OK


def run_schema(args: argparse.Namespace) -> int:
    json.dump(json_schema(), sys.stdout, indent=2)
    sys.stdout.write("\n")
    return EXIT_OK
