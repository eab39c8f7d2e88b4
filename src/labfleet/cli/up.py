"""``labfleet up``: run the embedded platform in the foreground."""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path
from typing import Any

from labfleet.cli.common import (
    EXIT_BAD_INPUT,
    add_config_option,
    add_data_dir_option,
    load_or_report,
)
from labfleet.cli.reload import save_applied
from labfleet.hub.extra_config import check_extra_config
from labfleet.secrets import ensure_secrets
from labfleet.up.datadir import runtime_for
from labfleet.up.status import machine_check, startup_warnings
from labfleet.up.supervisor import Supervisor


def register(subparsers: Any) -> None:
    up = subparsers.add_parser("up", help="run hub, proxy and users' servers on this machine")
    add_config_option(up)
    add_data_dir_option(up)
    up.add_argument("--ip", default="127.0.0.1", help="public address (default 127.0.0.1)")
    up.add_argument("--port", type=int, default=8000, help="public port (default 8000)")
    up.set_defaults(func=run_up)


def _say(line: str) -> None:
    print(f"[labfleet] {line}", file=sys.stderr, flush=True)


def cli_name() -> str:
    """``labfleet`` when that name on PATH is this installation, else the full path."""
    ours = Path(sys.prefix) / "bin" / "labfleet"
    found = shutil.which("labfleet")
    if found and ours.exists() and Path(found).resolve() == ours.resolve():
        return "labfleet"
    return str(ours) if ours.exists() else "labfleet"


def run_up(args: argparse.Namespace) -> int:
    config = load_or_report(args.config)
    if config is None:
        return EXIT_BAD_INPUT
    problems = check_extra_config(config.hub.extra_config)
    problems += machine_check(config, args.data_dir)[0]
    if problems:
        print("error: the config cannot run here:", file=sys.stderr)
        for problem in problems:
            print(f"  {problem}", file=sys.stderr)
        return EXIT_BAD_INPUT
    runtime = runtime_for(args.data_dir, args.ip, args.port)
    save_applied(runtime.state_dir, config)
    secrets = ensure_secrets(runtime.secrets_dir)
    _say(f"data directory: {runtime.data_dir}")
    for warning in startup_warnings(config, runtime):
        _say(f"warning: {warning}")
    admin_password = None
    if config.auth.kind == "password":
        from labfleet.auth.accounts import AccountStore, ensure_initial_admin

        admin_password = ensure_initial_admin(AccountStore(runtime.accounts_db))

    def announce() -> None:
        if admin_password:
            _say("created the first account — shown once, only a hash is stored:")
            _say("    username: admin")
            _say(f"    password: {admin_password}")
            _say(f"add people with: {cli_name()} users add NAME --password-stdin")
        _say(f"status, reload, logs: {cli_name()} status | reload | logs (from any directory)")

    config_path = Path(args.config) if args.config else None
    if config.tls is None:
        return Supervisor(runtime, secrets, config_path, say=_say).run(on_ready=announce)
    from labfleet.cli.tlsup import run_with_tls

    supervisor = Supervisor(runtime, secrets, config_path, say=_say, scheme="https")
    return run_with_tls(config.tls, supervisor, announce, _say)
