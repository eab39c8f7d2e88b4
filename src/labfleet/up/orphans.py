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

The snapshotted groups of the others are then removed (rmdir, which the kernel
refuses for a group something still runs in): a server killed with its hub, or
a hub killed between making a group and launching into it, leaves an empty
group that nothing else would ever remove.
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
    #: a server's control group (one entry per hierarchy), removed once it is empty
    group: Path | None = None


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
            found.append(Found(group.name, 0, 0, leader=False, stale=True, group=group))
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
    groups = [f.group for f in doomed if f.group is not None]
    # one try for a group empty in the snapshot: a start made since may be about to join it
    remove_groups([g for g in groups if g.name not in stopped], wait=0)
    remove_groups([g for g in groups if g.name in stopped])
    return sorted(stopped)


def remove_groups(groups: list[Path], wait: float = 5) -> None:
    """rmdir each group, retrying up to ``wait`` s while the processes just killed leave it;
    a group still busy after that (something started in it since) stays."""
    deadline = time.monotonic() + wait
    left = list(groups)
    while left:
        busy = []
        for group in left:
            try:
                group.rmdir()
            except FileNotFoundError:
                pass
            except OSError:
                busy.append(group)
        if not busy or time.monotonic() > deadline:
            return
        left = busy
        time.sleep(0.05)


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
