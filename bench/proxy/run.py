"""Benchmark: backend direct vs Node CHP vs labfleet-proxy, same backend, same run.

    .venv/bin/python bench/proxy/run.py [--duration 8] [--workers 2] [--json out.json]

Needs ``wrk`` (Debian package) and Node CHP at ``.node/node_modules/.bin/
configurable-http-proxy`` (``npm install --prefix .node configurable-http-proxy``);
rows for a missing proxy are skipped. Prints one markdown table; ratios are
to CHP in the same run. Nothing here asserts on timing.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
CHP = REPO / ".node" / "node_modules" / ".bin" / "configurable-http-proxy"
PROXY = Path(sys.executable).parent / "labfleet-proxy"
TOKEN = "bench-token-" + os.urandom(8).hex()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_port(port: int, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"port {port} never opened")


def rss_kb(pid: int) -> int:
    """RSS of a process plus its children (labfleet-proxy workers)."""
    total = 0
    pids = [pid]
    out = subprocess.run(["ps", "-o", "pid=", "--ppid", str(pid)], capture_output=True, text=True)
    pids += [int(p) for p in out.stdout.split()]
    for p in pids:
        try:
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        except FileNotFoundError:
            pass
    return total


def backend_connections(port: int) -> int:
    """Connections the backend accepted so far (this query's own included)."""
    import httpx

    return int(httpx.get(f"http://127.0.0.1:{port}/__connections").text)


@dataclass
class Row:
    scenario: str
    via: str
    conns: int
    rps: float
    p50_ms: float
    p99_ms: float
    mb_s: float
    rss_mb: float
    extra: str = ""


_UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0}


def _ms(text: str) -> float:
    m = re.match(r"([\d.]+)(us|ms|s)", text)
    return float(m.group(1)) * _UNITS[m.group(2)] if m else float("nan")


def wrk(url: str, conns: int, duration: int, headers: list[str] | None = None) -> dict[str, float]:
    cmd = [
        "wrk",
        f"-t{min(conns, 2)}",
        f"-c{conns}",
        f"-d{duration}s",
        "--latency",
        "--timeout",
        "10s",
    ]
    for h in headers or []:
        cmd += ["-H", h]
    out = subprocess.run([*cmd, url], capture_output=True, text=True, check=True).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    p50 = re.search(r"^\s+50%\s+(\S+)", out, re.M)
    p99 = re.search(r"^\s+99%\s+(\S+)", out, re.M)
    transfer = re.search(r"Transfer/sec:\s+([\d.]+)(\w+)", out)
    mb = 0.0
    if transfer:
        scale = {"B": 1 / 2**20, "KB": 1 / 1024, "MB": 1, "GB": 1024}.get(transfer.group(2), 0)
        mb = float(transfer.group(1)) * scale
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    socket_errors = re.search(r"Socket errors: (.*)", out)
    return {
        "rps": rps,
        "p50": _ms(p50.group(1)) if p50 else float("nan"),
        "p99": _ms(p99.group(1)) if p99 else float("nan"),
        "mb": mb,
        "non2xx": float(errors.group(1)) if errors else 0.0,
        "sockerr": 1.0 if socket_errors else 0.0,
    }


async def ws_roundtrips(url: str, clients: int, per_client: int) -> dict[str, float]:
    import websockets

    latencies: list[float] = []

    async def one() -> None:
        async with websockets.connect(url, max_size=None) as ws:
            for i in range(per_client):
                t0 = time.perf_counter()
                await ws.send(f"ping {i}")
                await ws.recv()
                latencies.append((time.perf_counter() - t0) * 1000)

    t0 = time.perf_counter()
    await asyncio.gather(*(one() for _ in range(clients)))
    elapsed = time.perf_counter() - t0
    latencies.sort()
    return {
        "rps": len(latencies) / elapsed,
        "p50": statistics.median(latencies),
        "p99": latencies[int(len(latencies) * 0.99) - 1],
    }


class Proc:
    def __init__(self, name: str, cmd: list[str], env: dict[str, str] | None = None) -> None:
        self.name = name
        self.proc = subprocess.Popen(
            cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(15)
        except subprocess.TimeoutExpired:
            self.proc.kill()


def add_route(api_port: int, path: str, target: str) -> None:
    import httpx

    r = httpx.post(
        f"http://127.0.0.1:{api_port}/api/routes{path}",
        json={"target": target},
        headers={"Authorization": f"token {TOKEN}"},
    )
    r.raise_for_status()


def start_proxy(kind: str, workers: int) -> tuple[Proc, int, int]:
    port, api_port = free_port(), free_port()
    env = dict(os.environ, CONFIGPROXY_AUTH_TOKEN=TOKEN)
    common = [
        "--ip",
        "127.0.0.1",
        "--port",
        str(port),
        "--api-ip",
        "127.0.0.1",
        "--api-port",
        str(api_port),
        "--log-level",
        "error",
    ]
    if kind == "chp":
        proc = Proc("chp", [str(CHP), *common], env)
    else:
        extra = ["--workers", str(workers)] if workers > 1 else []
        proc = Proc(kind, [str(PROXY), *common, *extra], env)
    wait_port(port)
    wait_port(api_port)
    return proc, port, api_port


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--duration", type=int, default=8, help="seconds per wrk run")
    parser.add_argument("--conns", default="1,16,64")
    parser.add_argument(
        "--workers", type=int, default=0, help="also run labfleet-proxy with this many workers"
    )
    parser.add_argument("--ws-clients", type=int, default=8)
    parser.add_argument("--ws-messages", type=int, default=2000)
    parser.add_argument("--json", help="also write the rows here")
    parser.add_argument(
        "--small-only", action="store_true", help="only the small-response rows (a quick check)"
    )
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        print("wrk is not installed (apt-get install -y wrk)", file=sys.stderr)
        return 2
    conns = [int(c) for c in args.conns.split(",")]
    http_port, ws_port = free_port(), free_port()
    backend = Proc(
        "backend", [sys.executable, str(HERE / "backend.py"), str(http_port), str(ws_port)]
    )
    wait_port(http_port)
    wait_port(ws_port)
    vias: list[tuple[str, str, int]] = [("direct", "", 1)]
    if CHP.exists():
        vias.append(("chp", "chp", 1))
    else:
        print(f"(Node CHP not found at {CHP}: skipped)", file=sys.stderr)
    vias.append(("labfleet", "labfleet", 1))
    if args.workers > 1:
        vias.append((f"labfleet x{args.workers}", "labfleet", args.workers))
    rows: list[Row] = []
    try:
        for label, kind, workers in vias:
            proc = None
            if kind:
                proc, port, api_port = start_proxy(kind, workers)
                add_route(api_port, "/user/bench", f"http://127.0.0.1:{http_port}")
                add_route(api_port, "/user/ws", f"http://127.0.0.1:{ws_port}")
                base, ws_base = f"http://127.0.0.1:{port}", f"ws://127.0.0.1:{port}"
            else:
                base, ws_base = f"http://127.0.0.1:{http_port}", f"ws://127.0.0.1:{ws_port}"
            pid = proc.proc.pid if proc else 0

            def rss(pid: int = pid) -> float:
                return rss_kb(pid) / 1024 if pid else 0.0

            def measure(
                scenario: str,
                path: str,
                c: int,
                headers: list[str] | None = None,
                base: str = base,
                label: str = label,
            ) -> None:
                before = backend_connections(http_port)
                r = wrk(base + path, c, args.duration, headers)
                opened = backend_connections(http_port) - before - 1
                note = f"backend sockets +{opened}"
                if r["non2xx"] or r["sockerr"]:
                    note += f", non2xx={int(r['non2xx'])}, socket errors={bool(r['sockerr'])}"
                row = Row(scenario, label, c, r["rps"], r["p50"], r["p99"], r["mb"], rss(), note)
                rows.append(row)
                print(f"  {label:>12} {scenario} c={c}: {r['rps']:.0f} req/s", file=sys.stderr)

            wrk(base + "/user/bench/warmup", 16, 1)
            for c in conns:
                measure("small", "/user/bench/small", c)
            if args.small_only:
                if proc:
                    proc.stop()
                continue
            measure("churn (new conn/req)", "/user/bench/churn", 64, ["Connection: close"])
            measure("64 MiB streamed", "/user/bench/big", 4)
            w = asyncio.run(
                ws_roundtrips(
                    ws_base + "/user/ws/", args.ws_clients, args.ws_messages // args.ws_clients
                )
            )
            rows.append(
                Row(
                    "websocket echo",
                    label,
                    args.ws_clients,
                    w["rps"],
                    w["p50"],
                    w["p99"],
                    0.0,
                    rss(),
                )
            )
            print(f"  {label:>12} done", file=sys.stderr)
            if proc:
                proc.stop()
    finally:
        backend.stop()
    print_table(rows)
    if args.json:
        Path(args.json).write_text(json.dumps([asdict(r) for r in rows], indent=2))
    return 0


def print_table(rows: list[Row]) -> None:
    chp = {(r.scenario, r.conns): r for r in rows if r.via == "chp"}
    print(
        "| scenario | via | conns | req/s | p50 ms | p99 ms | MB/s | proxy RSS MB "
        "| req/s vs CHP | p99 vs CHP | note |"
    )
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---|")
    for r in rows:
        base = chp.get((r.scenario, r.conns))
        compare = base is not None and r.via not in ("chp", "direct")
        ratio = f"{r.rps / base.rps:.2f}x" if compare and base and base.rps else ""
        p99r = f"{r.p99_ms / base.p99_ms:.2f}x" if compare and base and base.p99_ms else ""
        mb = f"{r.mb_s:.0f}" if r.mb_s >= 1 else ""
        rss = f"{r.rss_mb:.0f}" if r.rss_mb else ""
        print(
            f"| {r.scenario} | {r.via} | {r.conns} | {r.rps:.0f} | {r.p50_ms:.2f} | "
            f"{r.p99_ms:.2f} | {mb} | {rss} | {ratio} | {p99r} | {r.extra} |"
        )


if __name__ == "__main__":
    sys.exit(main())
