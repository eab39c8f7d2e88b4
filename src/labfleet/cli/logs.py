"""``labfleet logs [USER[/SERVER]|hub|proxy] [-f]``: the log a question is answered by.

``hub`` is ``logs/hub.log`` (the hub, the proxy and the services it starts
write there); ``proxy`` is the proxy's lines of it; a user name is the log
of that user's (default or named) server. On Kubernetes (``--cluster``,
``--kubeconfig`` or ``--context``, or when no local data dir exists) the same
questions are answered from the pods' logs through the Kubernetes API
(:mod:`labfleet.kube.logs`): the hub's and the proxy's current pod, or the
user's server pod.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from labfleet.cli.common import (
    EXIT_BAD_INPUT,
    EXIT_FAILURE,
    EXIT_OK,
    add_config_option,
    add_data_dir_option,
    is_data_dir,
)
from labfleet.naming import server_slug
from labfleet.spawn.diagnose import log_tail

_PROXY_MARKERS = ("proxy", "configurable-http-proxy", "[ConfigProxy]")


def register(subparsers: Any) -> None:
    logs = subparsers.add_parser("logs", help="show the hub's, the proxy's or a user's server log")
    logs.add_argument(
        "what", nargs="?", default="hub", help="hub (default), proxy, USER or USER/SERVER"
    )
    logs.add_argument("-f", "--follow", action="store_true", help="keep printing new lines")
    logs.add_argument("-n", "--lines", type=int, default=50, help="how many last lines (50)")
    add_data_dir_option(logs)
    cluster = logs.add_argument_group("on Kubernetes")
    cluster.add_argument(
        "--cluster", action="store_true", help="read the pods' logs (default: no local data dir)"
    )
    cluster.add_argument("--kubeconfig", metavar="FILE", help="default: in-cluster or ~/.kube")
    cluster.add_argument("--context", metavar="NAME", help="kubeconfig context")
    add_config_option(cluster)
    logs.set_defaults(func=run_logs)


def log_file(data_dir: Path, what: str) -> Path:
    """Pure: which file answers ``what``."""
    if what in ("hub", "proxy"):
        return data_dir / "logs" / "hub.log"
    user, _, server = what.partition("/")
    return data_dir / "logs" / "servers" / f"{server_slug(user, server)}.log"


def _keep(what: str) -> Callable[[str], bool]:
    if what == "proxy":
        return lambda line: any(m.lower() in line.lower() for m in _PROXY_MARKERS)
    return lambda line: True


def wants_cluster(args: argparse.Namespace) -> bool:
    """Kubernetes when asked for, or when there is no embedded platform to read."""
    if args.cluster or args.kubeconfig or args.context:
        return True
    implicit = getattr(args, "data_dir_source", "").startswith("the default")
    return implicit and not is_data_dir(args.data_dir)


def run_cluster_logs(args: argparse.Namespace) -> int:
    from labfleet.cli.common import load_or_report

    config = load_or_report(args.config)
    if config is None:
        return EXIT_BAD_INPUT
    # imported here: local logs must not need the Kubernetes client stack
    from lightkube.core.exceptions import ConfigError as KubeConfigError

    from labfleet.kube.apply import connect
    from labfleet.kube.logs import LogsError, log_source, read_logs

    source = log_source(config, args.what)
    try:
        client = connect(args.kubeconfig, args.context)
        for line in read_logs(client, source, lines=args.lines, follow=args.follow):
            print(line, flush=args.follow)
    except LogsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_FAILURE
    except KubeConfigError as exc:
        print(
            f"error: no local data dir at {args.data_dir} and no usable kubeconfig: {exc}",
            file=sys.stderr,
        )
        return EXIT_FAILURE
    except OSError as exc:
        print(f"error: cannot reach the Kubernetes API: {exc}", file=sys.stderr)
        return EXIT_FAILURE
    return EXIT_OK


def run_logs(args: argparse.Namespace) -> int:
    if wants_cluster(args):
        return run_cluster_logs(args)
    data_dir: Path = args.data_dir
    if not is_data_dir(data_dir):
        print(f"error: no data directory at {data_dir}", file=sys.stderr)
        return EXIT_BAD_INPUT
    path = log_file(data_dir, args.what)
    if not path.exists():
        print(f"error: no log at {path} (has {args.what} run yet?)", file=sys.stderr)
        return EXIT_BAD_INPUT
    keep = _keep(args.what)
    wanted = args.lines * (20 if args.what == "proxy" else 1)
    for line in [x for x in log_tail(path, wanted, max_bytes=4 * 2**20) if keep(x)][-args.lines :]:
        print(line)
    if not args.follow:
        return EXIT_OK
    with path.open("rb") as handle:
        handle.seek(0, 2)
        pending = b""
        while True:
            chunk = handle.read(65536)
            if not chunk:
                sys.stdout.flush()
                time.sleep(0.25)
                continue
            pending += chunk
            *lines, pending = pending.split(b"\n")
            for raw in lines:
                line = raw.decode(errors="replace")
                if keep(line):
                    print(line)
