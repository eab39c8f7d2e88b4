"""``labfleet reload``: apply a changed labfleet.yaml without stopping anyone's server.

The running supervisor is told which file to use and sent SIGHUP; it
restarts only the hub, which finds every running server again (their
processes, routes in the proxy and kernels are untouched). We return once
the new hub answers, and say which changes only reach a server when it is
next started.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import time
from pathlib import Path
from typing import Any

from labfleet.cli.common import (
    EXIT_BAD_INPUT,
    EXIT_FAILURE,
    EXIT_NOT_RUNNING,
    EXIT_OK,
    add_config_option,
    add_data_dir_option,
    load_or_report,
)
from labfleet.config.model import FleetConfig
from labfleet.hub.extra_config import check_extra_config
from labfleet.secrets import read_secrets
from labfleet.up.hubapi import HubAPI, is_healthy
from labfleet.up.record import read_record, request_reload_config

APPLIED_NAME = "applied-config.json"

#: top-level sections → what a change means for servers that run now
_NEEDS_SERVER_RESTART = {
    "profiles": "profiles (environment, CPU, memory, GPUs) apply to servers started from now on",
    "servers": "servers.* (default URL, launcher, timeouts) apply to servers started from now on",
    "local": "local.* (isolation, limits, GPUs, shared folders) apply to servers started "
    "from now on",
    "kubernetes": "kubernetes.* is not used by the embedded platform (run `labfleet apply`)",
}
_NEEDS_PLATFORM_RESTART = {
    "proxy": "proxy.* takes effect when the proxy restarts: stop and start `labfleet up`",
    "name": "name takes effect at the next `labfleet up`",
}


def register(subparsers: Any) -> None:
    reload = subparsers.add_parser(
        "reload", help="apply a changed labfleet.yaml; users' servers keep running"
    )
    add_config_option(reload)
    add_data_dir_option(reload)
    reload.add_argument(
        "--timeout", type=float, default=120.0, metavar="SECONDS", help="wait for the hub"
    )
    reload.set_defaults(func=run_reload)


def save_applied(state_dir: Path, config: FleetConfig) -> None:
    """The config the hub now runs with, to tell the next reload what changed."""
    state_dir.mkdir(parents=True, exist_ok=True)
    (state_dir / APPLIED_NAME).write_text(json.dumps(config.model_dump(mode="json")))


def load_applied(state_dir: Path) -> dict[str, Any] | None:
    try:
        data = json.loads((state_dir / APPLIED_NAME).read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def change_notes(old: dict[str, Any] | None, new: dict[str, Any]) -> tuple[list[str], list[str]]:
    """Pure: (sections changed, notes on changes that a hub restart does not apply)."""
    if old is None:
        return [], ["the previous config is unknown: restart servers to be sure they use this one"]
    changed = sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k))
    notes = [_NEEDS_SERVER_RESTART[k] for k in changed if k in _NEEDS_SERVER_RESTART]
    notes += [_NEEDS_PLATFORM_RESTART[k] for k in changed if k in _NEEDS_PLATFORM_RESTART]
    return changed, notes


def _hub_pid(state_dir: Path) -> int | None:
    try:
        return int((state_dir / "jupyterhub.pid").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def _wait_new_hub(state_dir: Path, old_pid: int | None, port: int, timeout: float) -> bool:
    """True once a hub other than ``old_pid`` answers its health check."""
    deadline = time.monotonic() + timeout
    health = f"http://127.0.0.1:{port}/hub/health"
    while time.monotonic() < deadline:
        pid = _hub_pid(state_dir)
        if pid is not None and pid != old_pid and is_healthy(health):
            return True
        time.sleep(0.2)
    return False


def _wait_routes(data_dir: Path, hub_port: int, timeout: float) -> bool:
    """True once the proxy routes every running server again.

    The restarted hub keeps a live proxy (hub/kept_proxy.py) and checks its routes;
    where it has to replace one (the proxy died, its command changed) the routes come
    back only after the hub adds them, and until then a member's open tab gets a 404
    instead of their (still running) server.
    """
    try:
        secrets = read_secrets(data_dir / "secrets")
        proxy_api = int(json.loads((data_dir / "state" / "ports.json").read_text())["proxy_api"])
    except (OSError, ValueError, KeyError):
        return True  # nothing to check against: the hub's health is all we can wait for
    hub = HubAPI(f"http://127.0.0.1:{hub_port}/hub/api", secrets.supervisor_token)
    proxy = HubAPI(f"http://127.0.0.1:{proxy_api}/api", secrets.proxy_token)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            users = hub.users("active")  # every page of them
            wanted = {
                server["url"].rstrip("/")
                for user in users
                for server in (user.get("servers") or {}).values()
                if server.get("ready") and server.get("url")
            }
            routes = set(proxy.request("GET", "/routes") or {})
            if wanted <= {route.rstrip("/") for route in routes}:
                return True
        except (OSError, ValueError):
            pass
        time.sleep(0.2)
    return False


def run_reload(args: argparse.Namespace) -> int:
    data_dir: Path = args.data_dir.resolve()
    state_dir = data_dir / "state"
    record = read_record(data_dir)
    if record is None or not record.alive():
        print(f"error: no running platform in {data_dir}; start it with `labfleet up`")
        return EXIT_NOT_RUNNING
    path = args.config or record.config
    config = load_or_report(path)
    if config is None:
        print("nothing was changed: the running platform keeps its config", file=sys.stderr)
        return EXIT_BAD_INPUT
    problems = check_extra_config(config.hub.extra_config)
    if problems:
        print("error: hub.extra_config is not valid:", file=sys.stderr)
        for problem in problems:
            print(f"  {problem}", file=sys.stderr)
        print("nothing was changed: the running platform keeps its config", file=sys.stderr)
        return EXIT_BAD_INPUT
    new = config.model_dump(mode="json")
    changed, notes = change_notes(load_applied(state_dir), new)
    old_pid = _hub_pid(state_dir)
    request_reload_config(data_dir, Path(path) if path else None)
    os.kill(record.pid, signal.SIGHUP)
    print(f"reloading {path or 'the default config'}: restarting the hub (servers keep running)…")
    if not _wait_new_hub(state_dir, old_pid, record.hub_port, args.timeout):
        print(
            f"error: the hub did not become healthy within {args.timeout:.0f}s; "
            f"see `labfleet logs hub` (data directory {data_dir})",
            file=sys.stderr,
        )
        return EXIT_FAILURE
    if not _wait_routes(data_dir, record.hub_port, args.timeout):
        print("warning: the proxy does not route every running server yet", file=sys.stderr)
    save_applied(state_dir, config)
    print("the hub is back: " + (f"changed: {', '.join(changed)}" if changed else "no changes"))
    for note in notes:
        print(f"note: {note}")
    return EXIT_OK
