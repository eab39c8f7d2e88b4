"""The kernel-start row: a kernel forked from the zygote vs a plain (stock) start.

    .venv/bin/python bench/user_path/kernels.py [--kernels 5] [--prefix /opt/labfleet/server-env-…]

One real jupyter_server per mode, in the environment users' servers run in
(the newest ``/opt/labfleet/server-env-*`` if there is one, else this
interpreter's); "plain" is the server as stock JupyterHub runs it (each kernel a
fresh ``python -m ipykernel_launcher``), "zygote" adds ``spawn.kernel_zygote``.
Per kernel: POST ``/api/kernels`` → ``kernel_info_reply`` on its websocket
(wall), and the kernel process's own CPU-seconds at that moment; then the
idle kernel's USS and, for the zygote, its USS/PSS (it is paid once per
server). Kernels are started one at a time, each shut down before the next.
Run on a busy machine, read the ratio column.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import psutil
import websockets

TOKEN = "bench-not-a-secret"
HEADERS = {"Authorization": f"token {TOKEN}"}
ZYGOTE_ARG = "--ServerApp.jpserver_extensions=labfleet.spawn.kernel_zygote=True"


@dataclass
class KernelRow:
    mode: str
    wall: list[float] = field(default_factory=list)
    cpu: list[float] = field(default_factory=list)
    kernel_uss_mib: float | None = None
    zygote_uss_mib: float | None = None
    zygote_pss_mib: float | None = None
    forked: int = 0


def server_prefix() -> Path:
    envs = sorted(Path("/opt/labfleet").glob("server-env-*/bin/jupyter-server"))
    return envs[-1].parent.parent if envs else Path(sys.prefix)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def kernel_info_request() -> dict[str, object]:
    msg_id = uuid.uuid4().hex
    header = {"msg_id": msg_id, "msg_type": "kernel_info_request", "session": "bench"}
    return {
        "header": {**header, "username": "bench", "version": "5.3", "date": ""},
        "parent_header": {},
        "metadata": {},
        "content": {},
        "channel": "shell",
    }


async def wait_kernel_info(ws_url: str) -> None:
    request = kernel_info_request()
    async with websockets.connect(ws_url, additional_headers=HEADERS, open_timeout=120) as ws:
        await ws.send(json.dumps(request))
        while True:
            msg = json.loads(await ws.recv())
            if msg.get("msg_type") == "kernel_info_reply":
                return


def kernel_children(server: int) -> tuple[list[psutil.Process], psutil.Process | None]:
    """(kernels, zygote) under the server."""
    kernels, zygote = [], None
    with contextlib.suppress(psutil.Error):
        for child in psutil.Process(server).children(recursive=True):
            with contextlib.suppress(psutil.Error):
                line = " ".join(child.cmdline())
                if "kernel_zygote_main" in line and child.ppid() == server:
                    zygote = child
                elif "ipykernel" in line or "kernel_zygote_main" in line:
                    kernels.append(child)
    return kernels, zygote


async def one_kernel(url: str, server: int, row: KernelRow) -> None:
    async with httpx.AsyncClient(headers=HEADERS, timeout=120) as http:
        began = time.perf_counter()
        resp = await http.post(url + "api/kernels", json={"name": "python3"})
        resp.raise_for_status()
        kernel_id = resp.json()["id"]
        ws_url = url.replace("http", "ws", 1) + f"api/kernels/{kernel_id}/channels"
        await wait_kernel_info(ws_url)
        row.wall.append(time.perf_counter() - began)
        kernels, zygote = kernel_children(server)
        for kernel in kernels:
            times = kernel.cpu_times()
            row.cpu.append(times.user + times.system)
            row.forked += int(zygote is not None and kernel.ppid() == zygote.pid)
            await asyncio.sleep(2)  # idle, as a member's kernel mostly is
            row.kernel_uss_mib = kernel.memory_full_info().uss / 2**20
        if zygote is not None:
            info = zygote.memory_full_info()
            row.zygote_uss_mib, row.zygote_pss_mib = info.uss / 2**20, info.pss / 2**20
        await http.delete(url + f"api/kernels/{kernel_id}")


def measure(mode: str, prefix: Path, n: int, work: Path) -> KernelRow:
    port = free_port()
    root = work / mode
    root.mkdir()
    env = {
        "PATH": f"{prefix}/bin:/usr/bin:/bin",
        "HOME": str(root),
        "JUPYTER_CONFIG_DIR": str(root / "config"),
        "IPYTHONDIR": str(root / "ipython"),
    }
    argv = [
        str(prefix / "bin" / "jupyter-server"),
        f"--ServerApp.port={port}",
        "--ServerApp.ip=127.0.0.1",
        "--ServerApp.open_browser=False",
        f"--ServerApp.root_dir={root}",
        f"--IdentityProvider.token={TOKEN}",
        *(["--allow-root"] if os.getuid() == 0 else []),
        *([ZYGOTE_ARG] if mode == "zygote" else []),
    ]
    with (root / "server.log").open("wb") as log:
        server = subprocess.Popen(
            argv, env=env, cwd=root, stdout=log, stderr=log, start_new_session=True
        )
    url = f"http://127.0.0.1:{port}/"
    row = KernelRow(mode)
    try:
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(url + "api/status", headers=HEADERS, timeout=5).status_code == 200:
                    break
            time.sleep(0.2)
        time.sleep(3)  # the zygote finishes its imports (a member opens a notebook later)
        for _ in range(n):
            asyncio.run(one_kernel(url, server.pid, row))
    finally:
        server.send_signal(signal.SIGTERM)
        try:
            server.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait()
    return row


def p50(values: list[float]) -> float | None:
    return statistics.median(values) if values else None


def fmt(value: float | None, unit: str = "") -> str:
    return "—" if value is None else f"{value:.2f}{unit}"


def kernel_table(rows: list[KernelRow]) -> str:
    plain = next((r for r in rows if r.mode == "plain"), None)
    lines = [
        "| kernel start (REST → kernel_info_reply) | wall p50 | max | vs plain "
        "| kernel CPU-s p50 | idle kernel USS | zygote USS / PSS | forked |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in rows:
        ratio = "—"
        if plain and r is not plain and p50(r.wall) and p50(plain.wall):
            ratio = f"{p50(plain.wall) / p50(r.wall):.1f}x faster"  # type: ignore[operator]
        zygote = (
            "—"
            if r.zygote_uss_mib is None
            else (f"{r.zygote_uss_mib:.0f} / {r.zygote_pss_mib:.0f} MiB")
        )
        lines.append(
            f"| {r.mode} | {fmt(p50(r.wall), ' s')} | {fmt(max(r.wall, default=None), ' s')} "
            f"| {ratio} | {fmt(p50(r.cpu))} | {fmt(r.kernel_uss_mib, ' MiB')} | {zygote} "
            f"| {r.forked}/{len(r.wall)} |"
        )
    return "\n".join(lines)


def run(n: int = 5, prefix: Path | None = None) -> list[KernelRow]:
    with tempfile.TemporaryDirectory(prefix="bench-kernels-") as tmp:
        return [
            measure(mode, prefix or server_prefix(), n, Path(tmp)) for mode in ("plain", "zygote")
        ]


def kernel_row(n: int) -> None:
    """The row as ``run.py`` prints it after its tables (n kernels per mode; 0: skip)."""
    if n > 0:
        print("\n" + kernel_table(run(n)))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kernels", type=int, default=5)
    parser.add_argument("--prefix", type=Path)
    args = parser.parse_args(argv)
    load = os.getloadavg()[0]
    rows = run(args.kernels, args.prefix)
    print(f"kernel start, {os.cpu_count()} CPUs, load average before {load:.1f}")
    print(kernel_table(rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
