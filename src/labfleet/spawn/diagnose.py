"""Why a user's server stopped, and what it uses: read from its log and its control group.

The spawner calls these few functions at the moments a member would
otherwise be left guessing (a server that exits during start, one killed
at its memory limit), so the spawn page, the hub log and ``labfleet status``
can say what happened in plain words and what to do about it.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import time
from dataclasses import asdict, dataclass
from html import escape
from pathlib import Path

from jupyterhub.spawner import SpawnException

from labfleet.spawn.limits import LimitsBackend

TAIL_LINES = 15
#: page templates that show what this module finds (see hub.settings)
TEMPLATES = Path(__file__).with_name("templates")


def log_tail(path: Path, lines: int = TAIL_LINES, max_bytes: int = 64_000) -> list[str]:
    """The last lines of a server's log (empty if there is none)."""
    try:
        with path.open("rb") as handle:
            handle.seek(0, 2)
            size = handle.tell()
            handle.seek(max(0, size - max_bytes))
            text = handle.read().decode(errors="replace")
    except OSError:
        return []
    return [line for line in text.splitlines() if line.strip()][-lines:]


#: (pattern in the log, the likely cause in plain words)
_CAUSES: tuple[tuple[re.Pattern[str], str], ...] = (
    (
        re.compile(r"ModuleNotFoundError|No module named|ImportError"),
        "a Python package the server needs is missing from the profile's environment "
        "(install jupyterhub and jupyterlab there)",
    ),
    (
        re.compile(r"Address already in use|EADDRINUSE"),
        "the server's port was taken by another process; start it again",
    ),
    (
        re.compile(r"Permission denied|PermissionError|EACCES"),
        "the server's account may not read or write a file it needs (its home, "
        "its environment); an administrator should check the permissions",
    ),
    (
        re.compile(r"No space left on device|ENOSPC|disk is full", re.IGNORECASE),
        "the disk is full; an administrator needs to free space",
    ),
    (
        re.compile(r"MemoryError|Cannot allocate memory"),
        "the server ran out of memory; choose a profile with more memory",
    ),
    (
        re.compile(r"Traceback \(most recent call last\)|Error:"),
        "the server crashed while starting; the log lines above say where",
    ),
)


def likely_cause(tail: list[str], exit_code: int | None, memory: int | None = None) -> str:
    """One sentence for the member: the first known cause found in the log tail."""
    if exit_code is not None and exit_code in (-9, 137) and memory:
        return oom_message(memory)
    text = "\n".join(tail)
    for pattern, cause in _CAUSES:
        if pattern.search(text):
            return cause
    if exit_code is not None and exit_code < 0:
        return f"the server was killed by signal {-exit_code}"
    return "the server exited before it was ready; the log lines above say why"


def human_bytes(n: float) -> str:
    """``2 GiB``, ``512 MiB``, ``1.5 GiB``: sizes as a person reads them."""
    for unit, factor in (("TiB", 2**40), ("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if n >= factor:
            value = n / factor
            return f"{value:.0f} {unit}" if value == int(value) else f"{value:.1f} {unit}"
    return f"{int(n)} B"


def oom_message(memory: int | None) -> str:
    limit = f"more than {human_bytes(memory)}" if memory else "more memory than allowed"
    return (
        f"killed: used {limit} (the profile's memory limit); "
        "use less memory or choose a profile with more"
    )


@dataclass(frozen=True)
class Usage:
    memory_bytes: int | None
    cpu_seconds: float | None


def _read_int(path: Path) -> int | None:
    with contextlib.suppress(OSError, ValueError):
        return int(path.read_text().split()[0])
    return None


def group_usage(backend: LimitsBackend | None, group: str) -> Usage | None:
    """Memory now and CPU time so far of a server's control group (v1 or v2)."""
    if backend is None:
        return None
    mounts = getattr(backend, "mounts", None)
    parent = getattr(backend, "parent", "labfleet")
    if isinstance(mounts, dict):  # cgroup v1: one hierarchy per controller
        memory = _read_int(
            Path(mounts.get("memory", "/nonexistent")) / parent / group / "memory.usage_in_bytes"
        )
        cpu_ns = _read_int(
            Path(str(mounts.get("cpuacct") or mounts.get("cpu") or "/nonexistent"))
            / parent
            / group
            / "cpuacct.usage"
        )
        cpu = cpu_ns / 1e9 if cpu_ns is not None else None
    else:  # cgroup v2: one directory
        root = getattr(backend, "root", None)
        if root is None:
            return None
        folder = Path(root) / parent / group
        memory = _read_int(folder / "memory.current")
        cpu = None
        with contextlib.suppress(OSError, ValueError):
            for line in (folder / "cpu.stat").read_text().splitlines():
                key, _, value = line.partition(" ")
                if key == "usage_usec":
                    cpu = int(value) / 1e6
    if cpu is None:  # no cpuacct controller (a v1 cpu-only hierarchy): add up its processes
        cpu = _cpu_of_processes(backend.pids(group))
    if memory is None and cpu is None:
        return None
    return Usage(memory, cpu)


def _cpu_of_processes(pids: list[int]) -> float | None:
    """User + system CPU seconds of live processes (what ``ps`` shows), None if none."""
    ticks = os.sysconf("SC_CLK_TCK")
    total, seen = 0, False
    for pid in pids:
        with contextlib.suppress(OSError, ValueError, IndexError):
            stat = Path(f"/proc/{pid}/stat").read_text()
            fields = stat[stat.rfind(")") + 2 :].split()
            total += int(fields[11]) + int(fields[12])
            seen = True
    return total / ticks if seen else None


# --- the last end of each server, kept for the member's page, the admin view and status ----


@dataclass(frozen=True)
class ServerEnd:
    """How a server ended when it was not asked to stop."""

    slug: str
    when: float
    message: str
    oom: bool
    log_tail: tuple[str, ...] = ()


def record_end(state_dir: Path, end: ServerEnd) -> None:
    folder = state_dir / "ends"
    with contextlib.suppress(OSError):
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"{end.slug}.json").write_text(json.dumps(asdict(end)))


def last_end(state_dir: Path, slug: str) -> ServerEnd | None:
    try:
        data = json.loads((state_dir / "ends" / f"{slug}.json").read_text())
        data["log_tail"] = tuple(data.get("log_tail", ()))
        return ServerEnd(**data)
    except (OSError, ValueError, TypeError):
        return None


def clear_end(state_dir: Path, slug: str) -> None:
    with contextlib.suppress(OSError):
        (state_dir / "ends" / f"{slug}.json").unlink(missing_ok=True)


def oom_end(slug: str, memory: int | None) -> ServerEnd:
    return ServerEnd(slug=slug, when=time.time(), message=oom_message(memory), oom=True)


# --- what the spawner raises and records ------------------------------------------------


def spawn_error(message: str, *, reason: str, status: int, html: str | None = None) -> Exception:
    """A SpawnException whose pages show ``message`` alone (JupyterHub's str() is a repr)."""
    exc: Exception = SpawnException(message, reason=reason, status_code=status)
    exc.jupyterhub_message = message  # type: ignore[attr-defined]
    if html:
        exc.jupyterhub_html_message = html  # type: ignore[attr-defined]
    return exc


ASK_ADMIN = (
    "Try again; if it keeps happening, an administrator can read the whole log with: "
    "labfleet logs {user}"
)


def start_failure(
    user: str, slug: str, log_path: Path, backend: LimitsBackend | None, memory: int | None
) -> Exception:
    """The server exited before it listened: say why, with the end of its log."""
    tail = log_tail(log_path)
    oom = backend is not None and backend.oom_kills(slug) > 0
    cause = oom_message(memory) if oom else likely_cause(tail, None, memory)
    shown = tail[-8:]
    message = f"Your server exited while starting. Likely cause: {cause}."
    if shown:
        message += " Last lines of its log: " + " | ".join(line.strip() for line in shown)
    message += " " + ASK_ADMIN.format(user=user)
    html = (
        f"<p>Your server exited while starting.</p><p><strong>Likely cause:</strong> "
        f"{escape(cause)}.</p>"
        + (
            f"<p>Last lines of its log:</p><pre>{escape(chr(10).join(shown))}</pre>"
            if shown
            else ""
        )
        + f"<p>{escape(ASK_ADMIN.format(user=user))}</p>"
    )
    return spawn_error(message, reason="exited", status=500, html=html)


def plain_spawn_error(exc: BaseException, user: str) -> Exception:
    """Any other failure in plain words: no exception repr reaches the member."""
    what = str(exc).strip() or type(exc).__name__
    message = (
        f"Your server could not be started: {what}. Try again in a moment. "
        + ASK_ADMIN.format(user=user)
    )
    return spawn_error(message, reason="error", status=500)


def note_end(
    state_dir: Path,
    slug: str,
    backend: LimitsBackend | None,
    memory: int | None,
    log_path: Path,
) -> ServerEnd | None:
    """A server we did not stop is gone: record why (OOM kill or its log tail)."""
    tail = tuple(log_tail(log_path, 8))
    if backend is not None and backend.oom_kills(slug) > 0:
        end = ServerEnd(slug, time.time(), oom_message(memory), True, tail)
    else:
        end = ServerEnd(
            slug,
            time.time(),
            "stopped unexpectedly: " + likely_cause(list(tail), None),
            False,
            tail,
        )
    record_end(state_dir, end)
    return end


@dataclass(frozen=True)
class LastEndLookup:
    """A ``JupyterHub.template_vars`` value: the last unexpected end of a user's server.

    A value object (compared by its state dir), so the settings builder stays pure.
    """

    state_dir: str

    def __call__(self, user: object) -> dict[str, object] | None:
        name = getattr(user, "name", None)
        if not name:
            return None
        from labfleet.naming import server_slug

        end = last_end(Path(self.state_dir), server_slug(str(name), ""))
        return None if end is None else asdict(end)
