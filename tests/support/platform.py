"""Start the real platform (`labfleet up`) in a subprocess for tests and benchmarks."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parents[2]
CHP = REPO / ".node" / "node_modules" / ".bin" / "configurable-http-proxy"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def labfleet(
    *args: str, input: str | None = None, data_dir: Path | None = None, check: bool = False
) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-m", "labfleet.cli.main", *args]
    if data_dir is not None:
        cmd += ["--data-dir", str(data_dir)]
    return subprocess.run(
        cmd, input=input, capture_output=True, text=True, check=check, timeout=120
    )


@dataclass
class Platform:
    data_dir: Path
    config: Path | None = None
    port: int = field(default_factory=free_port)
    log_path: Path | None = None
    proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 90) -> Platform:
        self.log_path = self.log_path or self.data_dir.parent / f"up-{self.port}.log"
        args = [
            sys.executable,
            "-m",
            "labfleet.cli.main",
            "up",
            "--port",
            str(self.port),
            "--data-dir",
            str(self.data_dir),
        ]
        if self.config:
            args += ["-c", str(self.config)]
        log = open(self.log_path, "ab")  # noqa: SIM115 - closed by the child's lifetime
        self.proc = subprocess.Popen(
            args, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"labfleet up exited {self.proc.returncode}:\n{self.log()[-8000:]}"
                )
            # "labfleet is up" is printed after /hub/health answers and before the banner
            if "labfleet is up at" in self.log() and self._healthy():
                time.sleep(0.2)  # let the banner lines that follow reach the log
                return self
            time.sleep(0.25)
        self.stop()
        raise RuntimeError(f"labfleet up did not become healthy:\n{self.log()[-8000:]}")

    def _healthy(self) -> bool:
        try:
            return httpx.get(f"{self.url}/hub/health", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path else ""

    def stop(self, timeout: float = 60) -> int:
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else 0
        self.proc.send_signal(signal.SIGINT)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            return self.proc.wait()

    def admin_password(self) -> str | None:
        for line in self.log().splitlines():
            if "password:" in line:
                return line.split("password:", 1)[1].strip()
        return None
