"""``labfleet envs create|install|list|remove``: the platform's managed server environments."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from labfleet.cli.common import EXIT_BAD_INPUT, EXIT_FAILURE, EXIT_OK, add_data_dir_option


def register(subparsers: Any) -> None:
    envs = subparsers.add_parser(
        "envs", help="Python environments users' servers run in (profiles: environment: NAME)"
    )
    commands = envs.add_subparsers(dest="envs_command", metavar="COMMAND", required=True)
    create = commands.add_parser("create", help="make an environment (with packages)")
    create.add_argument("name", metavar="NAME")
    create.add_argument(
        "--package",
        "-p",
        dest="packages",
        metavar="SPEC",
        action="append",
        default=[],
        help="a package from the index, e.g. 'pandas' or 'pandas==2.2.3' (repeatable)",
    )
    create.set_defaults(func=run_create)
    install = commands.add_parser(
        "install", help="add packages; running servers keep what they started with"
    )
    install.add_argument("name", metavar="NAME")
    install.add_argument("specs", metavar="SPEC", nargs="+")
    install.set_defaults(func=run_install)
    listing = commands.add_parser("list", help="the environments and what they contain")
    listing.set_defaults(func=run_list)
    remove = commands.add_parser("remove", help="remove an environment")
    remove.add_argument("name", metavar="NAME")
    remove.set_defaults(func=run_remove)
    for parser in (create, install, listing, remove):
        add_data_dir_option(parser)


def _say(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def _stack() -> Path:
    """The server environment every managed one is layered on (provisioned once per host)."""
    from labfleet.envs import BuildError
    from labfleet.spawn.server_env import ServerEnvError, ensure_for_up

    try:
        return ensure_for_up(_say) or Path(sys.prefix)
    except ServerEnvError as exc:
        raise BuildError(f"no server environment to build on: {exc}") from None


def _changed(what: str, args: argparse.Namespace, work: Any) -> int:
    from labfleet.envs import BuildError, EnvInputError, contents_line

    try:
        env = work()
    except EnvInputError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except (BuildError, OSError) as exc:
        print(f"error: could not {what} environment {args.name!r}: {exc}", file=sys.stderr)
        print("  nothing was changed: servers keep the environment as it was", file=sys.stderr)
        return EXIT_FAILURE
    contents = contents_line(env.manifest) if env.manifest else ""
    print(f"{env.name} (generation {env.generation}, {env.prefix}): {contents}")
    print(f"  profiles use it with  environment: {env.name}")
    return EXIT_OK


def run_create(args: argparse.Namespace) -> int:
    from labfleet.envs import EnvInputError, check_name, create, merge_specs

    try:  # bad input is refused before the server environment is even looked at
        check_name(args.name)
        merge_specs([], args.packages)
    except EnvInputError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    return _changed(
        "create", args, lambda: create(args.data_dir, args.name, args.packages, _stack(), _say)
    )


def run_install(args: argparse.Namespace) -> int:
    from labfleet.envs import EnvInputError, Store, check_spec, install

    try:
        Store(args.data_dir).require(args.name)
        for spec in args.specs:
            check_spec(spec)
    except EnvInputError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    return _changed(
        "install into", args, lambda: install(args.data_dir, args.name, args.specs, _stack(), _say)
    )


def run_list(args: argparse.Namespace) -> int:
    from labfleet.envs import Store, contents_line

    store = Store(args.data_dir)
    found = store.all()
    if not found:
        print(
            f"no environments for {args.data_dir} yet; make one with: "
            "labfleet envs create NAME --package SPEC"
        )
        return EXIT_OK
    stack = _current_stack()
    for env in found:
        contents = contents_line(env.manifest) if env.manifest else "(no manifest)"
        print(f"{env.name}\tgeneration {env.generation}\t{contents}")
        if env.manifest and stack and Path(env.manifest.base) != stack:
            print(
                f"  note: built on an older server environment ({env.manifest.base}); the next "
                f"'labfleet envs install {env.name} SPEC' rebuilds it on {stack}"
            )
    return EXIT_OK


def _current_stack() -> Path | None:
    """The server environment new builds would use, if known without building it."""
    from labfleet.spawn.server_env import default_plan, needed

    if not needed():
        return Path(sys.prefix)
    plan = default_plan()
    return plan.path if plan else None


def run_remove(args: argparse.Namespace) -> int:
    from labfleet.envs import EnvInputError, remove

    try:
        gone = remove(args.data_dir, args.name)
    except EnvInputError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except OSError as exc:
        print(f"error: could not remove {args.name!r}: {exc}", file=sys.stderr)
        return EXIT_FAILURE
    if gone:
        print(f"removed environment {args.name}")
    else:
        print(
            f"removed environment {args.name}: no new server can use it; its files stay "
            "until the servers still running from it stop (the next envs command cleans up)"
        )
    return EXIT_OK
