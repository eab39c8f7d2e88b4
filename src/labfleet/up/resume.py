"""Servers running at shutdown are started again on the next ``labfleet up``."""

from __future__ import annotations

import json
from pathlib import Path

from labfleet.up.hubapi import HubAPI


def resume_file(state_dir: Path) -> Path:
    return state_dir / "resume.json"


def record(api: HubAPI, state_dir: Path) -> int:
    servers = {u: names for u, names in api.running_servers().items() if names}
    resume_file(state_dir).write_text(json.dumps(servers))
    return sum(len(n) for n in servers.values())


def resume(api: HubAPI, state_dir: Path, log: list[str]) -> int:
    path = resume_file(state_dir)
    try:
        servers: dict[str, list[str]] = json.loads(path.read_text())
    except (OSError, ValueError):
        return 0
    started = 0
    for user, names in servers.items():
        for name in names:
            try:
                api.start_server(user, name)
                started += 1
            except OSError as exc:
                log.append(f"could not resume {user}/{name}: {exc}")
    path.unlink(missing_ok=True)
    return started
