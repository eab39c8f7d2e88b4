"""Benchmark: how long until a user's server answers, labfleet vs stock JupyterHub.

    .venv/bin/python bench/spawn/run.py [--platforms labfleet,labfleet-forkserver,stock]
        [--sequential 5] [--concurrent 20] [--proxy labfleet|chp] [--json out.json]

For each platform, in turn and in the same run: start it, warm it with one
spawn, then time "start" (``POST /hub/api/users/<name>/server``) → "server
answers" (``GET /user/<name>/api/status`` through the proxy returns 200) for
N sequential users and for M users started at once. Prints one markdown
table; ratios are stock / platform (higher is faster). Nothing asserts.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform as host
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(HERE))

from bench.support.stock_hub import add_labfleet_admin, admin_token, start_stock  # noqa: E402
from measure import Driver, Summary, concurrent, sequential  # noqa: E402
from tests.support.platform import CHP, Platform  # noqa: E402

ADMIN = "benchadmin"
PASSWORD = "bench-password-" + os.urandom(6).hex()
TIMEOUT = 300  # generous on purpose: we want the time it takes, not a timeout

#: platform name → (launcher kind, spawner class or None for labfleet's own)
LAUNCHERS = {
    "labfleet": ("exec", None),
    "labfleet-forkserver": ("forkserver", None),
    # the proposed readiness wait, through a bench-only subclass (see ready_spawner.py)
    "labfleet-forkserver-ready": ("forkserver", "ready_spawner.ReadyLocalSpawner"),
}


def labfleet_config(launcher: str, proxy: str, spawner: str | None = None) -> str:
    text = (
        "culling: {enabled: false}\n"
        f"servers: {{start_timeout: {TIMEOUT}, http_timeout: {TIMEOUT}}}\n"
    )
    extra = [f"LocalSpawner: {{launcher_kind: {launcher}}}"]
    if spawner:
        extra.append(f"JupyterHub: {{spawner_class: {spawner}}}")
    text += f"hub: {{extra_config: {{{', '.join(extra)}}}}}\n"
    if proxy == "chp":
        text += f"proxy: {{kind: chp, chp_command: [{CHP}]}}\n"
    return text


class Running:
    """A started platform: its public URL and how to stop it."""

    def __init__(self, url: str, stop: Callable[[], object], log: Path | None) -> None:
        self.url, self.stop, self.log = url, stop, log


def start_labfleet(work: Path, launcher: str, proxy: str, spawner: str | None) -> Running:
    config = work / "labfleet.yaml"
    config.write_text(labfleet_config(launcher, proxy, spawner))
    data = work / "data"
    add_labfleet_admin(data, ADMIN, PASSWORD)
    saved = os.environ.get("PYTHONPATH")
    if spawner:  # the hub (and so the fork-server and servers) can import bench modules
        os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (str(HERE), saved) if p)
    try:
        running = Platform(data_dir=data, config=config).start(timeout=120)
    finally:
        if saved is None:
            os.environ.pop("PYTHONPATH", None)
        else:
            os.environ["PYTHONPATH"] = saved
    return Running(running.url, running.stop, running.log_path)


def start_stock_platform(work: Path) -> Running:
    hub = start_stock(work, ADMIN, TIMEOUT)
    return Running(hub.url, hub.stop, hub.log_path)


async def measure(name: str, url: str, n_seq: int, n_conc: int, poll: float) -> list[Summary]:
    driver = Driver(url, admin_token(url, ADMIN, PASSWORD), poll=poll, timeout=TIMEOUT)
    tag = name.replace("-", "")[:10]
    seq_names = [f"s{tag}{i}" for i in range(n_seq)]
    conc_names = [f"c{tag}{i}" for i in range(n_conc)]
    try:
        await driver.create_users(["warmup", *seq_names, *conc_names])
        # one untimed spawn: the page cache and the hub's lazy imports are warm for all
        warm = await driver.spawn("warmup")
        await driver.stop_all(["warmup"])
        print(f"  {name}: warm-up spawn {warm.seconds or warm.error}", flush=True)
        results = []
        if n_seq:
            results.append(await sequential(driver, name, seq_names))
            await driver.stop_all(seq_names)
        if n_conc:
            results.append(await concurrent(driver, name, conc_names))
            await driver.stop_all(conc_names)
        return results
    finally:
        await driver.close()


def fmt(value: float | None) -> str:
    return "—" if value is None else f"{value:.2f}"


def table(summaries: list[Summary]) -> str:
    anchor = {s.scenario: s for s in summaries if s.platform == "stock"}
    lines = [
        "| scenario | platform | ok | p50 s | p95 s | max s | all answered s "
        "| p50 ratio | max ratio | server CPU s |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for s in sorted(summaries, key=lambda s: (s.scenario, s.platform != "stock", s.platform)):
        ref = anchor.get(s.scenario)
        ratios = []
        for q in (0.5, 1.0):
            mine, theirs = s.quantile(q), ref.quantile(q) if ref else None
            ratios.append(f"{theirs / mine:.1f}x" if mine and theirs else "—")
        lines.append(
            f"| {s.scenario} | {s.platform} | {len(s.ok)}/{len(s.spawns)} | "
            f"{fmt(s.quantile(0.5))} | {fmt(s.quantile(0.95))} | {fmt(s.quantile(1.0))} | "
            f"{fmt(s.wall if not s.failed else None)} | {ratios[0]} | {ratios[1]} | "
            f"{fmt(s.cpu_median)} |"
        )
    return "\n".join(lines)


def run_all(args: argparse.Namespace, tmp: Path) -> list[Summary]:
    """Each platform in turn: start, measure, stop."""
    summaries: list[Summary] = []
    for name in args.platforms.split(","):
        work = tmp / name
        work.mkdir()
        print(f"starting {name}…", flush=True)
        if name == "stock":
            running = start_stock_platform(work)
        elif name in LAUNCHERS:
            launcher, spawner = LAUNCHERS[name]
            running = start_labfleet(work, launcher, args.proxy, spawner)
        else:
            raise SystemExit(f"unknown platform {name!r}")
        try:
            measured = asyncio.run(
                measure(name, running.url, args.sequential, args.concurrent, args.poll)
            )
        finally:
            running.stop()
        summaries += measured
        for s in measured:
            for spawn in s.spawns:
                if spawn.error:
                    print(f"  {s.platform} {spawn.user}: {spawn.error}", flush=True)
    return summaries


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--platforms",
        default="labfleet,stock",
        help=f"comma list of: {', '.join(LAUNCHERS)}, stock",
    )
    parser.add_argument("--sequential", type=int, default=5)
    parser.add_argument("--concurrent", type=int, default=20)
    parser.add_argument(
        "--proxy",
        choices=["labfleet", "chp"],
        default=os.environ.get("LABFLEET_TEST_PROXY", "labfleet"),
        help="labfleet's proxy (stock always uses Node CHP)",
    )
    parser.add_argument(
        "--poll", type=float, default=0.05, help="seconds between GET /user/<name>/api/status polls"
    )
    parser.add_argument("--json", type=Path, help="also write raw results here")
    parser.add_argument("--keep", action="store_true", help="keep data dirs and logs")
    args = parser.parse_args(argv)

    tmp = Path(tempfile.mkdtemp(prefix="bench-spawn-"))
    try:
        summaries = run_all(args, tmp)
    finally:
        if args.keep:
            print(f"data directories and logs kept in {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    print()
    print(
        f"spawn benchmark, {time.strftime('%Y-%m-%d %H:%M %Z')}, {host.node()}, "
        f"{os.cpu_count()} CPUs, {host.python_implementation()} {host.python_version()}, "
        f"labfleet proxy: {args.proxy}"
    )
    print()
    print(table(summaries))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps([asdict(s) for s in summaries], indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
