"""Stop server processes the hub does not know about (a hub killed mid-spawn).

Two records say what runs, and neither depends on the hub having lived long
enough to save anything:

* ``state/servers/<server-slug>.pid`` ("pid ticks"), written by the server
  process itself between fork and exec (``spawn.processes.RecordPid``);
* the server's control group ``labfleet-<hash>/<server-slug>``, which holds
  the server and every kernel it started: the ground truth when limits are on.

After the hub is healthy, the sweep takes a *snapshot* of both, then asks the
hub which servers it believes in (running or starting), and stops exactly the
snapshotted processes of the others. Snapshot first: a server started by a user
after the question is not in the snapshot, so the sweep can never kill it.
Pid + start ticks guard against recycled pids.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from labfleet.naming import server_slug
from labfleet.spawn.limits.base import read_pids
from labfleet.spawn.processes import is_alive, read_pid_record, signal_group, start_ticks


def known_slugs(servers: Mapping[str, Iterable[str]]) -> set[str]:
    return {server_slug(user, name) for user, names in servers.items() for name in names}


@dataclass(frozen=True)
class Found:
    """One process of a server slug, as seen in the snapshot."""

    slug: str
    pid: int
    ticks: int
    #: from the pid file: the server itself (its session is signalled, SIGTERM first)
    leader: bool
    record: Path | None = None
    stale: bool = False


def snapshot(run_dir: Path, cgroup_dirs: Iterable[Path] = ()) -> list[Found]:
    """Every live process recorded in a pid file or found in one of the server groups."""
    found: list[Found] = []
    seen: set[tuple[int, int]] = set()
    for path in sorted(run_dir.glob("*.pid")):
        entry = read_pid_record(path)
        if entry is not None and is_alive(*entry):
            found.append(Found(path.stem, *entry, leader=True, record=path))
            seen.add(entry)
        else:  # a stale or unreadable file: removed, nothing to stop
            found.append(
                Found(path.stem, *(entry or (0, 0)), leader=False, record=path, stale=True)
            )
    for parent in cgroup_dirs:
        for group in sorted(p for p in parent.iterdir() if p.is_dir()):
            for pid in read_pids([group / "cgroup.procs"]):
                ticks = start_ticks(pid)
                if ticks is not None and (pid, ticks) not in seen:
                    found.append(Found(group.name, pid, ticks, leader=False))
                    seen.add((pid, ticks))
    return found


def stop_found(found: list[Found], known: set[str], grace: float = 10) -> list[str]:
    """Stop the snapshotted processes of slugs not in ``known``; return those slugs."""
    doomed = [f for f in found if f.slug not in known]
    leaders = [f for f in doomed if f.leader]
    for leader in leaders:
        signal_group(leader.pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline and any(is_alive(f.pid, f.ticks) for f in leaders):
        time.sleep(0.05)
    stopped: set[str] = set()
    for entry in doomed:
        if not entry.stale and is_alive(entry.pid, entry.ticks):
            if entry.leader:
                signal_group(entry.pid, signal.SIGKILL)
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(entry.pid, signal.SIGKILL)
        if not entry.stale:
            stopped.add(entry.slug)
        # remove the record only if it is still the one we saw (a new start rewrites it)
        if entry.record is not None and read_pid_record(entry.record) in (
            (entry.pid, entry.ticks),
            None,
        ):
            entry.record.unlink(missing_ok=True)
    return sorted(stopped)


def sweep(
    run_dir: Path,
    cgroup_dirs: Iterable[Path],
    list_known: Callable[[], set[str]],
    grace: float = 10,
) -> list[str]:
    """Snapshot, then ask the hub, then stop what it does not know (see the module doc)."""
    found = snapshot(run_dir, cgroup_dirs)
    if not found:
        return []
    return stop_found(found, list_known(), grace)


def stop_orphans(run_dir: Path, known: set[str], grace: float = 10) -> list[str]:
    """Stop processes of pid files not in ``known``; return the slugs stopped."""
    return stop_found(snapshot(run_dir), known, grace)
