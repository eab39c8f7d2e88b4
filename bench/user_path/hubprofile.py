"""Where a burst's time goes (the hub's own Prometheus metrics); what a server costs in memory.

Both platforms run JupyterHub, so both expose the same ``/hub/metrics``
histograms: spawn duration (the spawner's start plus JupyterHub's HTTP
check), proxy route adds, request durations, and the event loop's interval
(JupyterHub samples it every 50 ms: anything above that is lag, i.e. the loop
was busy). Scraped before and after a burst, the difference is the burst's
own profile. Memory: USS (pages only this process has) and PSS (shared pages
split among their sharers) of each server process and of a kernel, by psutil.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from urllib.parse import quote

import httpx
import psutil
from prometheus_client.parser import text_string_to_metric_families

#: metric → what the profile calls it
STAGES = {
    "jupyterhub_login_duration_seconds": "hub: login handler",
    "jupyterhub_server_spawn_duration_seconds": "hub: spawn (start + readiness)",
    "jupyterhub_proxy_add_duration_seconds": "hub: proxy route add",
    "jupyterhub_request_duration_seconds": "hub: all requests",
    "jupyterhub_event_loop_interval_seconds": "hub: event loop interval",
}


@dataclass(frozen=True)
class Histo:
    count: float
    total: float
    buckets: tuple[tuple[float, float], ...]  # (upper bound, cumulative count)

    def minus(self, before: Histo | None) -> Histo:
        if before is None:
            return self
        old = dict(before.buckets)
        return Histo(
            self.count - before.count,
            self.total - before.total,
            tuple((le, c - old.get(le, 0.0)) for le, c in self.buckets),
        )

    @property
    def mean(self) -> float | None:
        return self.total / self.count if self.count else None

    def upper(self, q: float) -> float | None:
        """The smallest bucket bound below which a fraction ``q`` of the samples fell."""
        if not self.count:
            return None
        for le, cumulative in sorted(self.buckets):
            if cumulative >= q * self.count:
                return le
        return None


async def scrape(url: str, token: str) -> dict[str, Histo]:
    """Each histogram of :data:`STAGES`, summed over its labels."""
    async with httpx.AsyncClient(timeout=30) as http:
        resp = await http.get(f"{url}/hub/metrics", headers={"Authorization": f"token {token}"})
    if resp.status_code != 200:
        return {}
    out: dict[str, Histo] = {}
    for family in text_string_to_metric_families(resp.text):
        if family.name not in STAGES:
            continue
        count = total = 0.0
        buckets: dict[float, float] = {}
        for sample in family.samples:
            if sample.name.endswith("_count"):
                count += sample.value
            elif sample.name.endswith("_sum"):
                total += sample.value
            elif sample.name.endswith("_bucket"):
                le = float(sample.labels["le"])
                buckets[le] = buckets.get(le, 0.0) + sample.value
        out[family.name] = Histo(count, total, tuple(sorted(buckets.items())))
    return out


def profile_rows(before: dict[str, Histo], after: dict[str, Histo]) -> list[tuple[str, str]]:
    """(stage, "n=…, mean …, p90 ≤ …") for what changed between two scrapes."""
    rows = []
    for name, label in STAGES.items():
        if name not in after:
            continue
        delta = after[name].minus(before.get(name))
        if not delta.count:
            continue
        mean, p90, p99 = delta.mean, delta.upper(0.9), delta.upper(0.99)
        rows.append(
            (
                label,
                f"n={int(delta.count)}, mean {ms(mean)}, p90 ≤ {ms(p90)}, p99 ≤ {ms(p99)}",
            )
        )
    return rows


def ms(seconds: float | None) -> str:
    if seconds is None:
        return "—"
    if seconds == float("inf"):
        return "∞"
    return f"{seconds * 1000:.0f} ms"


async def server_pids(url: str, token: str, names: list[str]) -> dict[str, int]:
    headers = {"Authorization": f"token {token}"}
    async with httpx.AsyncClient(base_url=url, headers=headers, timeout=30) as http:
        models = await asyncio.gather(*(http.get(f"/hub/api/users/{quote(n)}") for n in names))
    pids = {}
    for name, model in zip(names, models, strict=True):
        state = model.json().get("servers", {}).get("", {}).get("state") or {}
        if state.get("pid"):
            pids[name] = int(state["pid"])
    return pids


@dataclass(frozen=True)
class Memory:
    uss: float  # MiB
    pss: float  # MiB


def memory_of(pid: int) -> Memory | None:
    try:
        info = psutil.Process(pid).memory_full_info()
    except (psutil.Error, OSError):
        return None
    return Memory(info.uss / 2**20, info.pss / 2**20)


#: the per-server kernel zygote's process name (``kernel_zygote_main.PROCESS_NAME``); one
#: forked beside its server has the server's command line, so the name is what tells
ZYGOTE_NAME = "kernel-zygote"


def _is_zygote(process: psutil.Process) -> bool:
    return bool(process.name() == ZYGOTE_NAME)


def kernel_pids(server_pid: int) -> list[int]:
    """The server's kernel processes: ``ipykernel`` in the command line, or a child of the
    server's kernel zygote (which keeps the zygote's command line)."""
    try:
        children = psutil.Process(server_pid).children(recursive=True)
    except psutil.Error:
        return []
    found = []
    for child in children:
        try:
            if any("ipykernel" in part for part in child.cmdline()):
                found.append(child.pid)
            elif child.ppid() != server_pid and _is_zygote(psutil.Process(child.ppid())):
                found.append(child.pid)  # forked from the zygote, not the zygote itself
        except psutil.Error:
            continue
    return found


def zygote_pids(server_pid: int) -> list[int]:
    """The server's kernel zygote (``local.kernel_preload``): part of what an idle server costs."""
    try:
        children = psutil.Process(server_pid).children(recursive=False)
    except psutil.Error:
        return []
    found = []
    for child in children:
        try:
            if _is_zygote(child):
                found.append(child.pid)
        except psutil.Error:
            continue
    return found
