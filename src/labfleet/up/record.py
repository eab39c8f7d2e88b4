"""The running platform's record: who supervises it, since when, at which URL.

``labfleet up`` writes ``state/platform.json`` in its data directory and a
one-line pointer (``current``) to that directory in a well-known place, so
that ``labfleet status``, ``reload`` and ``users`` run from any directory find
the platform that is running instead of creating a new empty data dir. Both
are removed on a clean stop; a stale record (its supervisor is gone) is
recognised by pid + kernel start time and ignored.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path

from labfleet.runtime import Runtime
from labfleet.spawn.processes import is_alive, start_ticks

RECORD_NAME = "platform.json"
#: written by ``labfleet reload`` before it signals the supervisor: the config to apply
RELOAD_NAME = "reload.json"


def pointer_path(environ: Mapping[str, str] | None = None) -> Path:
    """Where the pointer to the running data dir lives: /run when root, else ~/.local/state."""
    env = os.environ if environ is None else environ
    override = env.get("LABFLEET_CURRENT_FILE")
    if override:
        return Path(override)
    if os.geteuid() == 0:
        return Path("/run/labfleet/current")
    state_home = env.get("XDG_STATE_HOME") or str(Path(env.get("HOME", "~")) / ".local" / "state")
    return Path(state_home).expanduser() / "labfleet" / "current"


@dataclass(frozen=True)
class PlatformRecord:
    data_dir: str
    url: str
    pid: int  # the supervisor
    pid_ticks: int
    started: float  # unix time
    hub_port: int
    config: str | None = None  # the labfleet.yaml the hub runs with (None: defaults)

    def alive(self) -> bool:
        return is_alive(self.pid, self.pid_ticks or None)


def _write_atomic(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}")
    tmp.write_text(text)
    os.replace(tmp, path)


def write_record(runtime: Runtime, url: str, config: Path | None) -> PlatformRecord:
    """Called by the supervisor once the hub is healthy the first time."""
    pid = os.getpid()
    data_dir = runtime.data_dir
    record = PlatformRecord(
        data_dir=str(data_dir.resolve()),
        url=url,
        pid=pid,
        pid_ticks=start_ticks(pid) or 0,
        started=time.time(),
        hub_port=runtime.hub_port,
        config=str(config.resolve()) if config else None,
    )
    _write_atomic(data_dir / "state" / RECORD_NAME, json.dumps(asdict(record)))
    with contextlib.suppress(OSError):  # the pointer is a convenience, the record is the truth
        _write_atomic(pointer_path(), record.data_dir + "\n")
    return record


def clear_record(data_dir: Path) -> None:
    """Remove our record, and the pointer if it still points at this data dir."""
    (data_dir / "state" / RECORD_NAME).unlink(missing_ok=True)
    pointer = pointer_path()
    with contextlib.suppress(OSError):
        if pointer.read_text().strip() == str(data_dir.resolve()):
            pointer.unlink()


def read_record(data_dir: Path) -> PlatformRecord | None:
    try:
        data = json.loads((data_dir / "state" / RECORD_NAME).read_text())
        return PlatformRecord(**data)
    except (OSError, ValueError, TypeError):
        return None


def running_data_dir(environ: Mapping[str, str] | None = None) -> Path | None:
    """The data dir of the platform running now (per the pointer), or None."""
    try:
        text = pointer_path(environ).read_text().strip()
    except OSError:
        return None
    if not text:
        return None
    record = read_record(Path(text))
    return Path(text) if record is not None and record.alive() else None


def request_reload_config(data_dir: Path, config: Path | None) -> None:
    """Tell the supervisor which config the next hub runs with (read at SIGHUP)."""
    payload = {"config": str(config.resolve()) if config else None}
    _write_atomic(data_dir / "state" / RELOAD_NAME, json.dumps(payload))


def reload_config(data_dir: Path, current: Path | None) -> Path | None:
    """In the supervisor: the config a reload asked for (``current`` if none was written)."""
    path = data_dir / "state" / RELOAD_NAME
    try:
        wanted = json.loads(path.read_text()).get("config")
    except (OSError, ValueError, AttributeError):
        return current
    path.unlink(missing_ok=True)
    new = Path(wanted) if wanted else None
    record = read_record(data_dir)
    if record is not None:
        with contextlib.suppress(OSError):
            updated = {**asdict(record), "config": str(new) if new else None}
            _write_atomic(data_dir / "state" / RECORD_NAME, json.dumps(updated))
    return new
