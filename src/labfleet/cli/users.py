"""``labfleet users add/list/remove/passwd/admin``: password accounts in the data directory.

Works while the hub runs (both open the same SQLite file). Passwords come
from ``--password-stdin`` (one line), an interactive prompt when stdin is a
terminal, or ``--generate`` (printed once); never from the command line,
where they would land in shell history and ``ps``.
"""

from __future__ import annotations

import argparse
import getpass
import sys
from typing import Any

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

    remove = commands.add_parser("remove", help="delete an account (files are kept)")
    remove.add_argument("name")
    remove.set_defaults(func=run_remove)

    passwd = commands.add_parser("passwd", help="set a new password")
    passwd.add_argument("name")
    _password_source(passwd, allow_generate=True)
    passwd.set_defaults(func=run_passwd)

    admin = commands.add_parser("admin", help="grant (or --revoke) admin rights")
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
        print(f"{account.name}\t{'admin' if account.admin else 'user'}")
    return EXIT_OK


def run_remove(args: argparse.Namespace) -> int:
    try:
        _store(args).remove(args.name)
    except InvalidUsername as exc:
        return _fail(f"{exc}", EXIT_BAD_INPUT)
    except NoSuchAccount as exc:
        return _fail(f"{exc}", EXIT_FAILURE)
    print(f"removed {normalize_username(args.name)}; their files are kept")
    return EXIT_OK


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
        store.set_password(args.name, password, min_length=min_length)
    except (InvalidUsername, _PasswordInputError) as exc:
        return _fail(f"{exc}", EXIT_BAD_INPUT)
    except NoSuchAccount as exc:
        return _fail(f"{exc}", EXIT_FAILURE)
    except AccountError as exc:
        return _fail(f"{exc}", EXIT_BAD_INPUT)
    print("password changed")
    if generated:
        print(f"password: {password}")
    return EXIT_OK


def run_admin(args: argparse.Namespace) -> int:
    try:
        _store(args).set_admin(args.name, not args.revoke)
    except InvalidUsername as exc:
        return _fail(f"{exc}", EXIT_BAD_INPUT)
    except NoSuchAccount as exc:
        return _fail(f"{exc}", EXIT_FAILURE)
    print(f"{'revoked' if args.revoke else 'granted'} admin rights")
    return EXIT_OK
