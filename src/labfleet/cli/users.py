"""``labfleet users add/list/remove/passwd/admin``: password accounts in the data directory.

Works while the hub runs (both open the same SQLite file). ``remove``,
``admin`` and ``passwd`` take effect at once on a running platform (the hub
is asked to enforce them through its API); on a stopped one they are
enforced when it next starts. The logic lives in :mod:`labfleet.auth.lifecycle`.
Passwords come
from ``--password-stdin`` (one line), an interactive prompt when stdin is a
terminal, or ``--generate`` (printed once); never from the command line,
where they would land in shell history and ``ps``.
"""

from __future__ import annotations

import argparse
import getpass
import sys
from pathlib import Path
from typing import Any

from labfleet.auth import lifecycle
from labfleet.auth.accounts import (
    DEFAULT_MIN_LENGTH,
    AccountError,
    AccountExists,
    AccountStore,
    NoSuchAccount,
)
from labfleet.auth.hashing import generate_password
from labfleet.cli.common import (
    EXIT_BAD_INPUT,
    EXIT_FAILURE,
    EXIT_OK,
    add_config_option,
    add_data_dir_option,
    load_or_report,
)
from labfleet.runtime import Runtime
from labfleet.up.hubapi import HubAPI, local_hub
from labfleet.usernames import InvalidUsername, normalize_username


class _PasswordInputError(Exception):
    pass


def register(subparsers: Any) -> None:
    users = subparsers.add_parser("users", help="manage password accounts (embedded default)")
    commands = users.add_subparsers(dest="users_command", metavar="ACTION")
    users.set_defaults(func=lambda args: _usage(users))

    add = commands.add_parser("add", help="create an account")
    add.add_argument("name")
    add.add_argument("--admin", action="store_true", help="give the account admin rights")
    _password_source(add, allow_generate=True)
    add.set_defaults(func=run_add)

    listing = commands.add_parser("list", help="list accounts")
    listing.set_defaults(func=run_list)

    remove = commands.add_parser(
        "remove",
        help="remove a member now: servers stopped, sessions and tokens revoked, home archived",
        description="Remove a member. On a running platform their servers stop, their browser "
        "sessions and API tokens stop working and the hub user is deleted at once (on a "
        "stopped one, when it starts). Their home is archived (default, --keep-home) to "
        "<data-dir>/homes/.removed/<name>.removed-<UTC time>, readable by admins only, or "
        "deleted (--delete-home); it is never handed to a new account of the same name.",
    )
    remove.add_argument("name")
    home = remove.add_mutually_exclusive_group()
    home.add_argument(
        "--keep-home",
        dest="home",
        action="store_const",
        const="archive",
        default="archive",
        help="archive the home under homes/.removed/ (default)",
    )
    home.add_argument(
        "--delete-home", dest="home", action="store_const", const="delete", help="delete the home"
    )
    remove.add_argument(
        "--purge",
        action="store_true",
        help="also remove the member's system account and control groups on this machine",
    )
    remove.set_defaults(func=run_remove)

    passwd = commands.add_parser(
        "passwd",
        help="set a new password (ends existing sessions and tokens unless --keep-sessions)",
        description="Set a new password. By default (--logout) every existing browser session "
        "and API token of the member stops working and their servers are stopped, at once on a "
        "running platform; --keep-sessions changes only the password.",
    )
    passwd.add_argument("name")
    _password_source(passwd, allow_generate=True)
    sessions = passwd.add_mutually_exclusive_group()
    sessions.add_argument(
        "--logout",
        dest="logout",
        action="store_true",
        default=True,
        help="end existing sessions and tokens and stop servers (default)",
    )
    sessions.add_argument(
        "--keep-sessions",
        dest="logout",
        action="store_false",
        help="keep existing sessions and tokens working",
    )
    passwd.set_defaults(func=run_passwd)

    admin = commands.add_parser(
        "admin", help="grant (or --revoke) admin rights; applies to a running hub at once"
    )
    admin.add_argument("name")
    admin.add_argument("--revoke", action="store_true", help="take admin rights away")
    admin.set_defaults(func=run_admin)

    for parser in (add, listing, remove, passwd, admin):
        add_data_dir_option(parser)
        add_config_option(parser)


def _usage(parser: argparse.ArgumentParser) -> int:
    parser.print_help(sys.stderr)
    return EXIT_BAD_INPUT


def _password_source(parser: argparse.ArgumentParser, allow_generate: bool) -> None:
    group = parser.add_mutually_exclusive_group()
    group.add_argument(
        "--password-stdin", action="store_true", help="read the password from stdin (one line)"
    )
    if allow_generate:
        group.add_argument(
            "--generate", action="store_true", help="generate a strong password and print it once"
        )


def _store(args: argparse.Namespace) -> AccountStore:
    return AccountStore(Runtime(data_dir=args.data_dir).accounts_db)


def _min_length(args: argparse.Namespace) -> int | None:
    """The configured minimum password length; None if the config is invalid."""
    if not args.config:
        return DEFAULT_MIN_LENGTH
    config = load_or_report(args.config)
    return None if config is None else config.auth.password.min_length


def _read_password(args: argparse.Namespace) -> tuple[str, bool]:
    """The new password and whether it was generated (and must be printed)."""
    if getattr(args, "generate", False):
        return generate_password(), True
    if args.password_stdin or not sys.stdin.isatty():
        line = sys.stdin.readline()
        password = line[:-1] if line.endswith("\n") else line
        if password.endswith("\r"):
            password = password[:-1]
        if not password:
            raise _PasswordInputError("no password on stdin")
        return password, False
    first = getpass.getpass("New password: ")
    second = getpass.getpass("Repeat password: ")
    if first != second:
        raise _PasswordInputError("the passwords differ")
    return first, False


def _fail(message: str, code: int) -> int:
    print(f"error: {message}", file=sys.stderr)
    return code


def run_add(args: argparse.Namespace) -> int:
    min_length = _min_length(args)
    if min_length is None:
        return EXIT_BAD_INPUT
    try:
        password, generated = _read_password(args)
        account = _store(args).add(args.name, password, admin=args.admin, min_length=min_length)
    except (InvalidUsername, _PasswordInputError) as exc:
        return _fail(f"{exc}", EXIT_BAD_INPUT)
    except AccountExists as exc:
        return _fail(f"{exc}", EXIT_FAILURE)
    except AccountError as exc:
        return _fail(f"{exc}", EXIT_BAD_INPUT)
    role = "admin" if account.admin else "user"
    print(f"added {role} {account.name}")
    if generated:
        print(f"password: {password}")
    return EXIT_OK


def run_list(args: argparse.Namespace) -> int:
    for account in _store(args).list():
        pending = "" if account.has_password else "\tno password yet (link on /hub/accounts)"
        print(f"{account.name}\t{'admin' if account.admin else 'user'}{pending}")
    return EXIT_OK


def _hub(args: argparse.Namespace) -> HubAPI | None:
    return local_hub(Path(args.data_dir).resolve())


def _purge() -> lifecycle.Purge:
    """``labfleet.spawn.accounts.purge_local_user``: the member's system account and cgroups."""
    from labfleet.spawn.accounts import purge_local_user

    return purge_local_user


def _report(outcome: lifecycle.Outcome, done: str) -> int:
    print(f"{done}{'' if outcome.enforced_now else ' (recorded)'}")
    for note in outcome.notes:
        print(note)
    return EXIT_OK


def run_remove(args: argparse.Namespace) -> int:
    runtime = Runtime(data_dir=args.data_dir)
    try:
        outcome = lifecycle.remove_member(
            _store(args),
            runtime.homes_dir,
            args.name,
            _hub(args),
            home=args.home,
            purge=_purge() if args.purge else None,
            data_dir=runtime.data_dir,
        )
    except InvalidUsername as exc:
        return _fail(f"{exc}", EXIT_BAD_INPUT)
    except (NoSuchAccount, lifecycle.HubUnreachable) as exc:
        return _fail(f"{exc}", EXIT_FAILURE)
    return _report(outcome, f"removed {outcome.name}: servers stopped, sessions and tokens revoked")


def run_passwd(args: argparse.Namespace) -> int:
    min_length = _min_length(args)
    if min_length is None:
        return EXIT_BAD_INPUT
    store = _store(args)
    try:
        name = normalize_username(args.name)
        if not store.exists(name):
            raise NoSuchAccount(f"no account {name!r}")
        password, generated = _read_password(args)
        outcome = lifecycle.change_password(
            store, name, password, _hub(args), end_sessions=args.logout, min_length=min_length
        )
    except (InvalidUsername, _PasswordInputError) as exc:
        return _fail(f"{exc}", EXIT_BAD_INPUT)
    except (NoSuchAccount, lifecycle.HubUnreachable) as exc:
        return _fail(f"{exc}", EXIT_FAILURE)
    except AccountError as exc:
        return _fail(f"{exc}", EXIT_BAD_INPUT)
    ended = "; existing sessions and tokens ended" if args.logout else ""
    _report(outcome, f"password changed{ended}")
    if generated:
        print(f"password: {password}")
    return EXIT_OK


def run_admin(args: argparse.Namespace) -> int:
    try:
        outcome = lifecycle.set_admin(_store(args), args.name, not args.revoke, _hub(args))
    except InvalidUsername as exc:
        return _fail(f"{exc}", EXIT_BAD_INPUT)
    except (NoSuchAccount, lifecycle.HubUnreachable) as exc:
        return _fail(f"{exc}", EXIT_FAILURE)
    return _report(outcome, f"{'revoked' if args.revoke else 'granted'} admin rights")
