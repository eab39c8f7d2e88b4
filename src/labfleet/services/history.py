"""Usage samples the dashboard plots, from what the platform already has.

* the hub's REST API (who has a server, with which profile),
* each server's control group (memory now, CPU time so far),
* the hub's ``/hub/metrics`` (the spawn-duration histogram),
* the hub's log (requests the idle culler made).

Samples go to a bounded JSON-lines file in the data dir's state/, so the
plots survive a restart of the hub or the dashboard and the file never grows
past ``MAX_SAMPLES`` lines (it is rewritten with the newest half then).
"""

from __future__ import annotations

import contextlib
import json
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

MAX_SAMPLES = 2000
HISTORY_NAME = "dashboard-history.jsonl"

_BUCKET = re.compile(
    r"^jupyterhub_server_spawn_duration_seconds_bucket\{(?P<labels>[^}]*)\}\s+(?P<value>\S+)$"
)
_LE = re.compile(r'le="(?P<le>[^"]+)"')
_STATUS = re.compile(r'status="(?P<status>[^"]+)"')
_CULL = re.compile(r"DELETE /hub/api/users/(?P<user>[^/\s]+)/server[^\s]*\s+\(idle-culler@")


@dataclass
class Sample:
    t: float
    servers: dict[str, dict[str, Any]] = field(default_factory=dict)  # user → profile, usage
    culled: list[str] = field(default_factory=list)  # culls seen since the previous sample


def spawn_histogram(metrics_text: str) -> list[tuple[str, float]]:
    """Pure: ``/hub/metrics`` → [(bucket label, spawns in that bucket)] of successful spawns."""
    cumulative: dict[float, float] = {}
    for line in metrics_text.splitlines():
        match = _BUCKET.match(line.strip())
        if not match:
            continue
        labels = match.group("labels")
        status = _STATUS.search(labels)
        le = _LE.search(labels)
        if le is None or (status is not None and status.group("status") != "success"):
            continue
        bound = float("inf") if le.group("le") == "+Inf" else float(le.group("le"))
        cumulative[bound] = cumulative.get(bound, 0.0) + float(match.group("value"))
    bars: list[tuple[str, float]] = []
    previous = 0.0
    for bound in sorted(cumulative):
        label = "more" if bound == float("inf") else f"≤{bound:g}s"
        bars.append((label, max(0.0, cumulative[bound] - previous)))
        previous = cumulative[bound]
    return bars


def culls_in_log(text: str) -> list[str]:
    """Pure: users whose servers the idle culler stopped, in log order."""
    return [m.group("user") for m in _CULL.finditer(text)]


class HistoryFile:
    def __init__(self, path: Path) -> None:
        self.path = path

    def append(self, sample: Sample) -> None:
        line = json.dumps({"t": sample.t, "servers": sample.servers, "culled": sample.culled})
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("a") as handle:
            handle.write(line + "\n")
        self._bound()

    def _bound(self) -> None:
        with contextlib.suppress(OSError):
            lines = self.path.read_text().splitlines()
            if len(lines) > MAX_SAMPLES:
                tmp = self.path.with_suffix(".tmp")
                tmp.write_text("\n".join(lines[-MAX_SAMPLES // 2 :]) + "\n")
                tmp.replace(self.path)

    def read(self) -> list[Sample]:
        samples: list[Sample] = []
        try:
            text = self.path.read_text()
        except OSError:
            return samples
        for line in text.splitlines():
            try:
                data = json.loads(line)
                samples.append(Sample(float(data["t"]), data["servers"], data.get("culled", [])))
            except (ValueError, KeyError, TypeError):
                continue
        return samples


class LogCursor:
    """Reads what was appended to the hub's log since the last call."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.offset = 0

    def new_text(self) -> str:
        try:
            size = self.path.stat().st_size
            if size < self.offset:
                self.offset = 0  # rotated
            with self.path.open("rb") as handle:
                handle.seek(self.offset)
                data = handle.read()
            self.offset += len(data)
            return data.decode(errors="replace")
        except OSError:
            return ""


def now() -> float:
    return time.time()
