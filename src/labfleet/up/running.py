"""Is the embedded platform running, since when, at which URL, and who has a server?

Facts come from the supervisor's record (``state/platform.json``), the
hub's own health endpoint and REST API (with the supervisor's token), and
each server's control group; nothing is inferred from the config.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from labfleet.hub.settings import DEFAULT_HUB_PORT, cgroup_parent_for
from labfleet.naming import server_slug
from labfleet.secrets import read_secrets
from labfleet.spawn.diagnose import group_usage, last_end
from labfleet.spawn.limits import probe
from labfleet.up.hubapi import HubAPI, is_healthy
from labfleet.up.record import PlatformRecord, read_record

COMPONENTS_FILE = "components.json"  # written by the supervisor's crash-only side, if present


@dataclass
class ServerInfo:
    user: str
    name: str
    profile: str | None
    ready: bool
    started: str | None
    last_activity: str | None
    age_s: float | None
    idle_s: float | None
    memory_bytes: int | None = None
    cpu_seconds: float | None = None
    gpus: str | None = None


@dataclass
class PlatformStatus:
    running: bool
    data_dir: str
    url: str | None = None
    since: float | None = None
    reason: str | None = None  # why it is not running (or what is degraded)
    servers: list[ServerInfo] = field(default_factory=list)
    components: dict[str, Any] = field(default_factory=dict)
    last_ends: dict[str, str] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def _parse_time(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None


def _seconds_since(value: Any, now: float) -> float | None:
    moment = _parse_time(value)
    return None if moment is None else max(0.0, now - moment.timestamp())


def servers_from_users(users: list[dict[str, Any]], now: float) -> list[ServerInfo]:
    """Pure: the hub's user models → one row per running or starting server."""
    rows: list[ServerInfo] = []
    for user in users:
        for name, server in sorted((user.get("servers") or {}).items()):
            options = server.get("user_options") or {}
            profile = options.get("profile") if isinstance(options, dict) else None
            rows.append(
                ServerInfo(
                    user=user["name"],
                    name=name,
                    profile=str(profile) if profile else None,
                    ready=bool(server.get("ready")),
                    started=server.get("started"),
                    last_activity=server.get("last_activity"),
                    age_s=_seconds_since(server.get("started"), now),
                    idle_s=_seconds_since(server.get("last_activity"), now),
                )
            )
    return rows


def _components(state_dir: Path) -> dict[str, Any]:
    try:
        data = json.loads((state_dir / COMPONENTS_FILE).read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _gpus(state_dir: Path) -> dict[str, str]:
    try:
        data = json.loads((state_dir / "gpus.json").read_text())
        servers = data.get("servers", {})
        return {str(k): ", ".join(str(d) for d in v.get("devices", [])) for k, v in servers.items()}
    except (OSError, ValueError, AttributeError):
        return {}


def add_usage(rows: list[ServerInfo], data_dir: Path, limits_mode: str) -> None:
    backend = probe(limits_mode, cgroup_parent_for(data_dir)).backend
    gpus = _gpus(data_dir / "state")
    for row in rows:
        slug = server_slug(row.user, row.name)
        usage = group_usage(backend, slug)
        if usage is not None:
            row.memory_bytes, row.cpu_seconds = usage.memory_bytes, usage.cpu_seconds
        row.gpus = gpus.get(slug) or None


def _hub_port(data_dir: Path, record: PlatformRecord | None) -> int:
    if record is not None and record.hub_port:
        return record.hub_port
    try:
        return int(json.loads((data_dir / "state" / "ports.json").read_text())["hub"])
    except (OSError, ValueError, KeyError):
        return DEFAULT_HUB_PORT


def platform_status(data_dir: Path, limits_mode: str = "auto") -> PlatformStatus:
    """What runs now in ``data_dir`` (effects: reads files, asks the hub over loopback)."""
    data_dir = data_dir.resolve()
    state_dir = data_dir / "state"
    record = read_record(data_dir)
    status = PlatformStatus(running=False, data_dir=str(data_dir))
    status.components = _components(state_dir)
    if record is None:
        status.reason = "not started (no `labfleet up` is running with this data directory)"
        return status
    if not record.alive():
        status.reason = "stopped: the supervisor that started it is gone (not stopped cleanly)"
        return status
    status.url, status.since = record.url, record.started
    port = _hub_port(data_dir, record)
    if not is_healthy(f"http://127.0.0.1:{port}/hub/health"):
        status.reason = "the supervisor runs but the hub does not answer (starting or restarting)"
        return status
    status.running = True
    try:
        token = read_secrets(data_dir / "secrets").supervisor_token
        users = HubAPI(f"http://127.0.0.1:{port}/hub/api", token).users("active")
    except (OSError, ValueError, KeyError) as exc:
        status.reason = f"could not list servers: {exc}"
        return status
    status.servers = servers_from_users(users or [], time.time())
    add_usage(status.servers, data_dir, limits_mode)
    for end_file in sorted((state_dir / "ends").glob("*.json")):
        end = last_end(state_dir, end_file.stem)
        if end is not None:
            status.last_ends[end.slug] = end.message
    return status


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    seconds = int(seconds)
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m"
    if seconds < 86400:
        return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"
    return f"{seconds // 86400}d{seconds % 86400 // 3600}h"


def status_text(status: PlatformStatus, now: float | None = None) -> list[str]:
    """Pure: the status as lines for a person."""
    now = time.time() if now is None else now
    lines: list[str] = []
    if status.running:
        since = datetime.fromtimestamp(status.since or now).strftime("%Y-%m-%d %H:%M:%S")
        lines.append(f"labfleet: running since {since} ({_duration(now - (status.since or now))})")
        lines.append(f"url: {status.url}")
    else:
        lines.append(f"labfleet: NOT running — {status.reason}")
    lines.append(f"data directory: {status.data_dir}")
    for name, info in sorted(status.components.items()):
        if isinstance(info, dict):
            state = info.get("state", "?")
            why = info.get("reason") or info.get("why")
            lines.append(f"component {name}: {state}" + (f" ({why})" if why else ""))
    if status.running:
        if not status.servers:
            lines.append("servers: none running")
        else:
            lines.append(f"servers: {len(status.servers)}")
            lines.append("  USER  SERVER  PROFILE  STATE  AGE  IDLE  CPU  MEMORY  GPUS")
            from labfleet.spawn.diagnose import human_bytes

            for row in status.servers:
                cpu = f"{row.cpu_seconds:.1f}s" if row.cpu_seconds is not None else "-"
                memory = human_bytes(row.memory_bytes) if row.memory_bytes is not None else "-"
                lines.append(
                    "  "
                    + "  ".join(
                        [
                            row.user,
                            row.name or "(default)",
                            row.profile or "(default)",
                            "ready" if row.ready else "starting",
                            _duration(row.age_s),
                            _duration(row.idle_s),
                            cpu,
                            memory,
                            row.gpus or "-",
                        ]
                    )
                )
    for slug, message in sorted(status.last_ends.items()):
        lines.append(f"last end of {slug}: {message}")
    return lines
