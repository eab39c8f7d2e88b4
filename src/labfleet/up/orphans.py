"""Stop server processes the hub does not know about (a hub killed mid-spawn).

Every local server writes ``state/servers/<server-slug>.pid`` ("pid ticks")
when launched. After the hub is healthy, any pid file whose server the hub
does not list as running or pending belongs to an orphan: it is stopped and
its pid file removed. Pid + start ticks guard against recycled pids.
"""

from __future__ import annotations

import signal
import time
from collections.abc import Iterable, Mapping
from pathlib import Path

from labfleet.naming import server_slug
from labfleet.spawn.processes import is_alive, signal_group


def known_slugs(servers: Mapping[str, Iterable[str]]) -> set[str]:
    return {server_slug(user, name) for user, names in servers.items() for name in names}


def _read(path: Path) -> tuple[int, int] | None:
    try:
        pid_text, ticks_text = path.read_text().split()
        return int(pid_text), int(ticks_text)
    except (OSError, ValueError):
        return None


def stop_orphans(run_dir: Path, known: set[str], grace: float = 10) -> list[str]:
    """Stop processes of pid files not in ``known``; return the slugs stopped."""
    stopped: list[str] = []
    for path in sorted(run_dir.glob("*.pid")):
        slug = path.stem
        if slug in known:
            continue
        entry = _read(path)
        if entry is not None and is_alive(*entry):
            pid, ticks = entry
            signal_group(pid, signal.SIGTERM)
            deadline = time.monotonic() + grace
            while time.monotonic() < deadline and is_alive(pid, ticks):
                time.sleep(0.05)
            if is_alive(pid, ticks):
                signal_group(pid, signal.SIGKILL)
            stopped.append(slug)
        path.unlink(missing_ok=True)
    return stopped
