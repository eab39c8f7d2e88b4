"""``labfleet rotate crypt-key|cookie-secret|proxy-token|oauth-client``."""

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

KINDS = ("crypt-key", "cookie-secret", "proxy-token", "oauth-client")


def register(subparsers: Any) -> None:
    rotate = subparsers.add_parser(
        "rotate", help="replace a secret on the running platform (see docs/operating.md)"
    )
    rotate.add_argument("kind", choices=KINDS)
    add_config_option(rotate)
    add_data_dir_option(rotate)
    rotate.add_argument(
        "--secret-file",
        metavar="FILE",
        type=Path,
        help="oauth-client: the provider's new client secret (default: read stdin)",
    )
    rotate.add_argument(
        "--reencrypt-only",
        action="store_true",
        help="crypt-key: only re-encrypt auth_state with the first key of the current list "
        "(Kubernetes, between the two restarts)",
    )
    rotate.set_defaults(func=run_rotate)


def _say(line: str) -> None:
    print(f"[labfleet] {line}", file=sys.stderr, flush=True)


def run_rotate(args: argparse.Namespace) -> int:
    from labfleet.auth.secret_refs import SecretError
    from labfleet.config.load import ConfigError
    from labfleet.ops.hubprocess import RestartError
    from labfleet.ops.rotate import RotateError, rotate
    from labfleet.ops.target import locate

    try:
        target = locate(args.data_dir, args.config)
    except (ConfigError, SecretError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    new_secret = None
    if args.kind == "oauth-client":
        new_secret = (
            args.secret_file.read_text() if args.secret_file else sys.stdin.read()
        ).strip()
    try:
        rotate(args.kind, target, _say, new_secret, reencrypt=args.reencrypt_only)
    except (RotateError, RestartError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_FAILURE
    return EXIT_OK
