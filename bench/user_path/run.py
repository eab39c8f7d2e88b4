"""Benchmark: the whole user path, labfleet vs stock JupyterHub + Node CHP, in one run.

    .venv/bin/python bench/user_path/run.py [--platforms labfleet,stock]
        [--first 5] [--burst 10] [--storm-clients 8 --storm-seconds 10]
        [--restart-users 200 --restart-running 5] [--browser 1] [--json out.json]

The full table of bench/README.md is ``--first 10 --burst 50 --restart-users
10000 --restart-running 500`` on a quiet machine; the defaults are small so
the run fits a shared 2-core VM. For each platform in turn: start it, warm it
with one untimed member, then measure (see README.md, "User path"). Prints one
markdown table per measurement, ratios are stock / labfleet (higher: labfleet
is faster or smaller). Nothing asserts.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform as host
import shutil
import signal
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import httpx  # noqa: E402
import psutil  # noqa: E402
from api_path import (  # noqa: E402
    Burst,
    PathTiming,
    burst,
    member_path,
    quantile,
    sign_in,
    stop_servers,
)
from api_path import first_output_table as api_first_output_table  # noqa: E402
from hubprofile import (  # noqa: E402
    Memory,
    kernel_pids,
    memory_of,
    profile_rows,
    scrape,
    server_pids,
    zygote_pids,
)
from logins import Storm, hash_bound, idle_probe, login_storm  # noqa: E402
from platforms import PASSWORD, Running, admin_token, start_labfleet, start_stock, wait_healthy  # noqa: E402

from kernels import kernel_row  # noqa: E402


@dataclass
class Results:
    platform: str
    first: list[PathTiming] = field(default_factory=list)
    bursts: dict[str, Burst] = field(default_factory=dict)
    profile: list[tuple[str, str]] = field(default_factory=list)
    storm: Storm | None = None
    idle: Storm | None = None
    restart: dict[str, Any] = field(default_factory=dict)
    server_memory: list[Memory] = field(default_factory=list)
    kernel_memory: list[Memory] = field(default_factory=list)
    zygote_memory: list[Memory] = field(default_factory=list)
    browser: list[dict[str, Any]] = field(default_factory=list)
    kernel_cpu: list[float] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def names(prefix: str, n: int) -> list[str]:
    return [f"{prefix}{i}" for i in range(n)]


def cpu_seconds(pid: int | None) -> float | None:
    """utime + stime of ``pid`` (children not included)."""
    if pid is None:
        return None
    try:
        times = psutil.Process(pid).cpu_times()
    except psutil.Error:
        return None
    return float(times.user + times.system)


async def measure_memory(
    url: str,
    token: str,
    members: list[str],
    kernel_cpu: list[float] | None = None,
    zygotes: list[Memory] | None = None,
) -> tuple[list[Memory], list[Memory]]:
    await asyncio.sleep(1.0)  # let servers and kernels settle into idle
    servers, kernels = [], []
    for pid in (await server_pids(url, token, members)).values():
        mem = memory_of(pid)
        if mem:
            servers.append(mem)
        for zpid in zygote_pids(pid) if zygotes is not None else []:
            zmem = memory_of(zpid)
            if zmem:
                zygotes.append(zmem)
        for kpid in kernel_pids(pid):
            kmem = memory_of(kpid)
            if kmem:
                kernels.append(kmem)
            if kernel_cpu is not None:
                kernel_cpu.append(cpu_seconds(kpid) or 0.0)
    return servers, kernels


async def create_hub_users(url: str, token: str, users: list[str]) -> None:
    headers = {"Authorization": f"token {token}"}
    async with httpx.AsyncClient(base_url=url, headers=headers, timeout=600) as http:
        for i in range(0, len(users), 1000):
            resp = await http.post("/hub/api/users", json={"usernames": users[i : i + 1000]})
            if resp.status_code not in (201, 409):
                resp.raise_for_status()


async def spawn_all(url: str, token: str, users: list[str]) -> int:
    """Start ``users``' servers with the admin token (20 at a time); how many answer."""
    headers = {"Authorization": f"token {token}"}
    limit = asyncio.Semaphore(20)
    async with httpx.AsyncClient(base_url=url, headers=headers, timeout=600) as http:

        async def one(name: str) -> bool:
            async with limit:
                await http.post(f"/hub/api/users/{quote(name)}/server", json={})
                for _ in range(3000):
                    try:
                        if (await http.get(f"/user/{quote(name)}/api/status")).status_code == 200:
                            return True
                    except httpx.HTTPError:
                        pass
                    await asyncio.sleep(0.1)
                return False

        return sum(await asyncio.gather(*(one(n) for n in users)))


async def answering(url: str, token: str, users: list[str]) -> set[str]:
    """Which of ``users``' servers answer through the proxy now (each asked once, 5 s each).

    The client's pool is as wide as the list, so a queued request never counts as a
    server that does not answer.
    """
    headers = {"Authorization": f"token {token}"}
    limits = httpx.Limits(max_connections=max(1, len(users)))
    async with httpx.AsyncClient(base_url=url, headers=headers, timeout=5, limits=limits) as http:

        async def one(name: str) -> str | None:
            try:
                resp = await http.get(f"/user/{quote(name)}/api/status")
            except httpx.HTTPError:
                return None
            return name if resp.status_code == 200 else None

        return {n for n in await asyncio.gather(*(one(n) for n in users)) if n}


def measure_restart(running: Running, token: str, users: int, servers: int) -> dict[str, Any]:
    """Hub restart with ``users`` hub users and ``servers`` running.

    Stock JupyterHub stops its servers with the hub, so it restarts with none running.
    """
    everyone = names("r", users)
    asyncio.run(create_hub_users(running.url, token, everyone))
    with_server = everyone[:servers] if running.name != "stock" else []
    started = asyncio.run(spawn_all(running.url, token, with_server)) if with_server else 0
    begin = time.monotonic()
    running.restart_hub()
    healthy = time.monotonic() - begin + wait_healthy(running.url)
    # a server is back once it has answered; only the others are asked again
    pending, all_back = set(with_server), None
    deadline = begin + 120
    while pending and time.monotonic() < deadline:
        pending -= asyncio.run(answering(running.url, token, sorted(pending)))
        if not pending:
            all_back = time.monotonic() - begin
            break
        time.sleep(0.05)
    answered = len(with_server) - len(pending)
    if with_server:
        asyncio.run(stop_servers(running.url, token, with_server, timeout=600))
    return {
        "users": users,
        "running": started,
        "healthy_s": healthy,
        "servers_back_s": all_back,
        "lost": started - answered,
    }


def measure_platform(running: Running, args: argparse.Namespace) -> Results:
    res = Results(running.name)
    url = running.url
    token = admin_token(url)
    tag = running.name[:2]
    warm, first = names(f"w{tag}", 1), names(f"f{tag}", args.first)
    ready_burst, out_burst = names(f"b{tag}", args.burst), names(f"o{tag}", args.burst)
    signin_burst = names(f"s{tag}", args.burst)
    stormers = names(f"l{tag}", max(1, args.storm_clients))
    running.add_members([*warm, *first, *ready_burst, *signin_burst, *out_burst, *stormers])

    if first or args.burst or args.browser:
        w = asyncio.run(member_path(url, warm[0], PASSWORD))
        print(f"  {running.name}: warm-up member {w.total or w.error}", flush=True)
        asyncio.run(stop_servers(url, token, warm))

    for name in first:  # one member at a time, warm machine
        res.first.append(asyncio.run(member_path(url, name, PASSWORD)))
    if first:
        servers, kernels = asyncio.run(measure_memory(url, token, first, res.kernel_cpu))
        res.kernel_memory += kernels
        asyncio.run(stop_servers(url, token, first))

    if args.burst:
        sampled: dict[str, Any] = {}

        async def sample() -> None:
            sampled["metrics"] = await scrape(url, token)
            sampled["hub_cpu"] = cpu_seconds(running.hub_pid())

        async def signed_in_burst() -> Burst:
            members = await sign_in(url, ready_burst, PASSWORD)
            return await burst(url, ready_burst, PASSWORD, "ready", members, on_start=sample)

        res.bursts["ready"] = asyncio.run(signed_in_burst())
        before, hub_before = sampled["metrics"], sampled["hub_cpu"]
        hub_after = cpu_seconds(running.hub_pid())
        after = asyncio.run(scrape(url, token))
        res.profile = profile_rows(before, after)
        if hub_before is not None and hub_after is not None:
            per = (hub_after - hub_before) / len(ready_burst)
            res.profile.append(("hub: CPU per member (spawn, signed in)", f"{per:.3f} CPU-s"))
        cpus = [
            c
            for c in map(cpu_seconds, asyncio.run(server_pids(url, token, ready_burst)).values())
            if c is not None
        ]
        if cpus:
            res.profile.append(
                ("server: CPU until ready (p50)", f"{quantile(cpus, 0.5):.3f} CPU-s")
            )
        servers, _ = asyncio.run(measure_memory(url, token, ready_burst, zygotes=res.zygote_memory))
        res.server_memory += servers
        asyncio.run(stop_servers(url, token, ready_burst))
        res.bursts["signin"] = asyncio.run(burst(url, signin_burst, PASSWORD, "ready"))
        asyncio.run(stop_servers(url, token, signin_burst))
        res.bursts["output"] = asyncio.run(burst(url, out_burst, PASSWORD, "output"))
        _, kernels = asyncio.run(measure_memory(url, token, out_burst))
        res.kernel_memory += kernels
        asyncio.run(stop_servers(url, token, out_burst))

    if args.storm_seconds:
        res.idle = asyncio.run(idle_probe(url, token))
        res.storm = asyncio.run(
            login_storm(url, stormers, PASSWORD, token, args.storm_clients, args.storm_seconds)
        )

    if args.browser:
        try:
            from browser import browser_path

            res.browser = browser_path(url, running, args.browser, token)
        except Exception as exc:
            res.notes.append(f"browser row skipped: {type(exc).__name__}: {exc}")

    if args.restart_users:
        res.restart = measure_restart(running, token, args.restart_users, args.restart_running)
    return res


# --- printing -----------------------------------------------------------------------------


def fmt(value: float | None, unit: str = "") -> str:
    return "—" if value is None else f"{value:.2f}{unit}"


def ratio(theirs: float | None, mine: float | None) -> str:
    return f"{theirs / mine:.1f}x" if theirs and mine else "—"


def first_output_table(results: list[Results]) -> str:
    if not any(r.first for r in results):  # --first 0
        return ""
    return api_first_output_table([(r.platform, r.first) for r in results])  # ratio vs stock


def markdown(header: list[str], rows: list[list[str]]) -> str:
    """A markdown table, or "" when there is nothing to show (that measurement did not run)."""
    if not rows:
        return ""
    lines = ["| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
    return "\n".join([*lines, *("| " + " | ".join(row) + " |" for row in rows)])


def stock_of(results: list[Results]) -> Results | None:
    """The anchor of every ratio column (stock / this platform)."""
    return next((r for r in results if r.platform == "stock"), None)


def burst_table(results: list[Results]) -> str:
    anchor, rows = stock_of(results), []
    what = {
        "ready": "signed in → server ready",
        "signin": "sign in → server ready",
        "output": "sign in → first output",
    }
    for kind in what:
        for r in results:
            b = r.bursts.get(kind)
            if b is None:
                continue
            p50, top = quantile(b.ok, 0.5), quantile(b.ok, 1.0)
            ref = anchor.bursts.get(kind) if anchor else None
            ok_ref = ref if ref and not ref.failures else None
            rows.append(
                [
                    f"{len(b.timings)}: {what[kind]}",
                    r.platform,
                    f"{len(b.ok)}/{len(b.timings)}",
                    fmt(b.wall),
                    fmt(p50),
                    fmt(top),
                    fmt(p50 / top if p50 and top else None),
                    ratio(ok_ref.wall if ok_ref else None, b.wall),
                    ratio(quantile(ok_ref.ok, 0.5) if ok_ref else None, p50),
                ]
            )
    header = ["burst", "platform", "ok", "wall s", "p50 s", "max s", "p50/max", "wall ratio"]
    return markdown([*header, "p50 ratio"], rows)


def storm_table(results: list[Results], bound: tuple[int, float, float]) -> str:
    cores, per_hash, limit = bound
    anchor, rows = stock_of(results), []

    def ms(v: float | None) -> str:
        return "—" if v is None else f"{v * 1000:.0f}"

    for r in results:
        if r.storm is None:
            continue
        idle = r.idle or Storm()
        ours = r.platform != "stock"
        ref = anchor.storm if anchor else None
        rows.append(
            [
                r.platform,
                "password (scrypt)" if ours else "dummy (no hash)",
                f"{r.storm.rate:.1f}",
                f"{r.storm.rate / limit:.2f}" if ours else "—",
                str(r.storm.failures),
                ms(idle.probe_p50),
                ms(idle.probe_p99),
                ms(r.storm.probe_p50),
                ms(r.storm.probe_p99),
                ratio(ref.probe_p99 if ref else None, r.storm.probe_p99),
            ]
        )
    table = markdown(
        [
            "platform",
            "auth",
            "logins/s",
            "share of hash bound",
            "failures",
            "other requests p50 ms (at rest)",
            "p99 ms (at rest)",
            "p50 ms (storm)",
            "p99 ms (storm)",
            "p99 (storm) ratio",
        ],
        rows,
    )
    bound_line = f"hash bound: {cores} cores ÷ {per_hash:.3f} CPU-s per scrypt hash"
    return f"{bound_line} = {limit:.1f} logins/s\n\n{table}" if table else ""


def restart_table(results: list[Results]) -> str:
    anchor = stock_of(results)
    ref = anchor.restart.get("healthy_s") if anchor else None
    rows = [
        [
            r.platform,
            str(x["users"]),
            str(x["running"]),
            fmt(x["healthy_s"]),
            fmt(x["servers_back_s"]),
            str(x["lost"]),
            ratio(ref, x["healthy_s"]),
        ]
        for r in results
        if (x := r.restart)
    ]
    header = ["platform", "hub users", "running servers", "healthy after s"]
    return markdown([*header, "all servers answer after s", "lost", "healthy ratio"], rows)


def memory_table(results: list[Results]) -> str:
    anchor = stock_of(results)

    def p50(memory: list[Memory], kind: str) -> float | None:
        return quantile([getattr(m, kind) for m in memory], 0.5)

    rows = []
    for r in results:
        s, k, z = r.server_memory, r.kernel_memory, r.zygote_memory
        if not s and not k:
            continue
        ref = anchor.server_memory if anchor else []
        # what an idle server costs: the server, plus its kernel zygote where there is one
        whole = None if p50(s, "uss") is None else (p50(s, "uss") or 0.0) + (p50(z, "uss") or 0.0)
        rows.append(
            [
                r.platform,
                str(len(s)),
                fmt(p50(s, "uss")),
                fmt(p50(s, "pss")),
                fmt(p50(z, "uss")) if z else "-",
                fmt(p50(z, "pss")) if z else "-",
                fmt(whole),
                ratio(p50(ref, "uss"), whole),
                str(len(k)),
                fmt(p50(k, "uss")),
                fmt(p50(k, "pss")),
                fmt(quantile(r.kernel_cpu, 0.5)),
            ]
        )
    header = ["platform", "idle servers", "server USS MiB p50", "server PSS MiB p50"]
    header += ["zygote USS MiB p50", "zygote PSS MiB p50", "server + zygote USS MiB"]
    header += ["USS ratio", "kernels", "kernel USS MiB p50", "kernel PSS MiB p50"]
    return markdown([*header, "kernel CPU s to first output p50"], rows)


def profile_table(results: list[Results]) -> str:
    rows = []
    for r in results:
        rows += [[r.platform, stage, text] for stage, text in r.profile]
        b = r.bursts.get("ready")
        if b:
            for step in ("login", "ready"):
                values = [t.steps[step] for t in b.timings if step in t.steps]
                if not values:
                    continue
                rows.append(
                    [
                        r.platform,
                        f"client: {step}",
                        f"p50 {fmt(quantile(values, 0.5))} s, max {fmt(quantile(values, 1.0))} s",
                    ]
                )
    return markdown(["platform", "stage (signed-in server-ready burst)", "hub metrics"], rows)


def browser_table(results: list[Results]) -> str:
    rows = [row | {"platform": r.platform} for r in results for row in r.browser]
    if not rows:
        return ""
    lines = [
        "| platform | cache | sign in → lab usable s | → cell output visible s "
        "| notebook shown → kernel connected s | first cell ran | responses | from cache "
        "| 304 | largest script: bytes, Cache-Control, Content-Encoding | output ratio |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    stock_output = {
        row["cache"]: row.get("output_visible_s") for row in rows if row["platform"] == "stock"
    }
    for row in rows:
        big = row.get("biggest_script") or {}
        error = " ".join(str(row.get("error", "")).split())[:120]
        script = (
            f"{big.get('bytes', '—')} B, {big.get('cache-control') or 'none'}, "
            f"{big.get('content-encoding') or 'identity'}"
            if big
            else "—"
        )
        lines.append(
            f"| {row['platform']} | {row['cache']} | {fmt(row.get('lab_usable_s'))} "
            f"| {fmt(row.get('output_visible_s'))} | {fmt(row.get('window_s'))} "
            f"| {error or row.get('first_cell_ran', '—')} | {row.get('requests', '—')} "
            f"| {row.get('from_cache', '—')} | {row.get('revalidated', '—')} | {script} "
            f"| {ratio(stock_output.get(row['cache']), row.get('output_visible_s'))} |"
        )
    return "\n".join(lines)


def report(results: list[Results], bound: tuple[int, float, float]) -> None:
    for title, text in (
        ("Time to first output over the API (one member at a time)", first_output_table(results)),
        ("Bursts", burst_table(results)),
        ("Per-stage profile of the server-ready burst", profile_table(results)),
        ("Logins (storm)", storm_table(results, bound)),
        ("Hub restart", restart_table(results)),
        ("Idle memory", memory_table(results)),
        ("Browser", browser_table(results)),
    ):
        if text:
            print(f"\n### {title}\n\n{text}", flush=True)


def run_all(args: argparse.Namespace, tmp: Path, bound: tuple[int, float, float]) -> list[Results]:
    results = []
    for name in args.platforms.split(","):
        work = tmp / name
        work.mkdir()
        print(f"starting {name}…", flush=True)
        running = start_stock(work) if name == "stock" else start_labfleet(work, args.hash_niceness)
        try:
            results.append(measure_platform(running, args))
        finally:
            running.stop()
        for r in results[-1:]:
            for t in [*r.first, *(t for b in r.bursts.values() for t in b.timings)]:
                if t.error:
                    print(f"  {r.platform} {t.user}: {t.error}", flush=True)
            for note in r.notes:
                print(f"  {r.platform}: {note}", flush=True)
            for row in r.browser:
                if row.get("error"):
                    print(
                        f"  {r.platform} browser {row['cache']}: at {row.get('error_url')}, "
                        f"screenshot {row.get('screenshot')}",
                        flush=True,
                    )
        if len(results) < len(args.platforms.split(",")):
            print(f"\n(so far: {', '.join(r.platform for r in results)})")
            report(results, bound)  # a run cut short still shows what it measured
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--platforms", default="labfleet,stock")
    parser.add_argument("--first", type=int, default=5, help="members one at a time")
    parser.add_argument("--burst", type=int, default=10, help="members at once")
    parser.add_argument("--storm-clients", type=int, default=8)
    parser.add_argument("--storm-seconds", type=float, default=10)
    parser.add_argument("--restart-users", type=int, default=200)
    parser.add_argument("--restart-running", type=int, default=5)
    parser.add_argument("--browser", type=int, default=1, help="browser runs (0: none)")
    parser.add_argument(
        "--hash-niceness", type=int, help="PasswordAuthenticator.hash_niceness for labfleet"
    )
    parser.add_argument("--kernels", type=int, default=3, help="kernel starts per mode (0: none)")
    parser.add_argument("--json", type=Path)
    parser.add_argument("--keep", action="store_true")
    args = parser.parse_args(argv)

    # a timeout's SIGTERM still stops the platforms (the finally blocks run)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    bound = hash_bound()
    load_before = os.getloadavg()
    tmp = Path(tempfile.mkdtemp(prefix="bench-userpath-"))
    try:
        results = run_all(args, tmp, bound)
    finally:
        if args.keep:
            print(f"data directories and logs kept in {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    print()
    print(
        f"user-path benchmark, {time.strftime('%Y-%m-%d %H:%M %Z')}, {host.node()}, "
        f"{os.cpu_count()} CPUs, load average before {load_before[0]:.1f} / after "
        f"{os.getloadavg()[0]:.1f}, {host.python_implementation()} {host.python_version()}"
    )
    report(results, bound)
    kernel_row(args.kernels)  # bench/user_path/kernels.py: plain vs zygote kernel start
    if args.json:
        args.json.write_text(
            json.dumps([r.__dict__ for r in results], default=lambda o: o.__dict__, indent=1)
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
