"""``labfleet logs [USER[/SERVER]|hub|proxy] [-f]``: the log a question is answered by.

``hub`` is ``logs/hub.log`` (the hub, the proxy and the services it starts
write there); ``proxy`` is the proxy's lines of it; a user name is the log
of that user's (default or named) server. On Kubernetes the same questions
are answered by ``kubectl logs`` (printed when no local data dir exists).
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from labfleet.cli.common import EXIT_BAD_INPUT, EXIT_OK, add_data_dir_option, is_data_dir
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


def run_logs(args: argparse.Namespace) -> int:
    data_dir: Path = args.data_dir
    if not is_data_dir(data_dir):
        print(
            f"error: no data directory at {data_dir}; on Kubernetes use: "
            "kubectl logs deploy/hub (or the user's pod, jupyter-USER)",
            file=sys.stderr,
        )
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
