"""Start the real platform (`labfleet up`) in a subprocess for tests and benchmarks."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import yaml

REPO = Path(__file__).resolve().parents[2]
CHP = REPO / ".node" / "node_modules" / ".bin" / "configurable-http-proxy"
#: Data dirs of every platform this test process started (the session's clean-up uses them).
STARTED_DATA_DIRS: set[Path] = set()
#: LABFLEET_TEST_PROXY=chp runs the same end-to-end tests through Node CHP
TEST_PROXY = os.environ.get("LABFLEET_TEST_PROXY", "labfleet")


def write_config(path: Path, text: str) -> Path:
    """Write a test's labfleet.yaml (through Node CHP when ``LABFLEET_TEST_PROXY=chp``)."""
    if TEST_PROXY == "chp" and "proxy:" not in text:
        text += f"proxy: {{kind: chp, chp_command: [{CHP}]}}\n"
    path.write_text(text)
    return path


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


def _traversable_by_others(path: Path) -> bool:
    """Whether every existing ancestor of ``path`` lets other accounts pass (o+x)."""
    for folder in [path, *path.parents]:
        if folder.exists() and not folder.stat().st_mode & 0o001:
            return False
    return True


@dataclass
class Platform:
    data_dir: Path
    config: Path | None = None
    port: int = field(default_factory=free_port)
    log_path: Path | None = None
    proc: subprocess.Popen[bytes] | None = None
    _started_ticks: int | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def config_for_this_machine(self) -> Path | None:
        """The config to run, with ``local.isolation: none`` added where isolation cannot work.

        As root, ``isolation: auto`` now refuses a server whose home its account
        cannot reach (never running it as root instead). pytest's tmp dirs sit
        under a 0700 ``/tmp/pytest-of-root`` that pytest re-tightens every run,
        so a platform there can isolate nobody. Tests of other features run such
        platforms with isolation off, said in the config they run; tests of the
        boundary itself use a world-traversable data dir (see
        ``tests/adversarial``) or set ``local.isolation`` themselves, which is
        then left as it is.
        """
        if os.geteuid() != 0 or _traversable_by_others(self.data_dir):
            return self.config
        settings: dict[str, object] = {}
        if self.config is not None:
            settings = yaml.safe_load(self.config.read_text()) or {}
        local = settings.setdefault("local", {})
        if not isinstance(local, dict) or "isolation" in local:
            return self.config
        local["isolation"] = "none"
        out = self.data_dir.parent / f"labfleet-noisolation-{self.port}.yaml"
        out.write_text(yaml.safe_dump(settings))
        return out

    def start(self, timeout: float = 90) -> Platform:
        STARTED_DATA_DIRS.add(self.data_dir.resolve())
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
        config = self.config_for_this_machine()
        if config:
            args += ["-c", str(config)]
        log = open(self.log_path, "ab")  # noqa: SIM115 - closed by the child's lifetime
        self.proc = subprocess.Popen(
            args, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        if self._started_ticks is None:
            from labfleet.spawn.processes import start_ticks

            self._started_ticks = start_ticks(self.proc.pid)
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
        try:
            return self._stop_supervisor(timeout)
        finally:
            self.stop_leftovers()

    def _stop_supervisor(self, timeout: float) -> int:
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else 0
        self.proc.send_signal(signal.SIGINT)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            return self.proc.wait()

    def stop_leftovers(self) -> list[int]:
        """Kill, by recorded pid + start ticks, what a killed or hung platform left:
        the hub, the proxy, users' servers (never by name). Returns the pids killed."""
        from labfleet.spawn.processes import is_alive, start_ticks

        state = self.data_dir / "state"
        entries: list[tuple[int, int | None]] = []
        for path in [state / "hub.launch", *sorted((state / "servers").glob("*.pid"))]:
            try:
                pid_text, ticks_text = path.read_text().split()
                entries.append((int(pid_text), int(ticks_text)))
            except (OSError, ValueError):
                pass
        since = self._started_ticks
        for path in (state / "jupyterhub.pid", state / "proxy.pid"):
            try:
                pid = int(path.read_text().strip())
            except (OSError, ValueError):
                continue
            # no start ticks recorded: only a process started after this platform's supervisor
            ticks = start_ticks(pid)
            if ticks is not None and since is not None and ticks >= since:
                entries.append((pid, ticks))
        killed: list[int] = []
        for pid, ticks in entries:
            if is_alive(pid, ticks):
                for kill in (os.killpg, os.kill):
                    with contextlib.suppress(ProcessLookupError, PermissionError):
                        kill(pid, signal.SIGKILL)
                killed.append(pid)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and any(is_alive(p, t) for p, t in entries):
            time.sleep(0.05)
        return killed

    def admin_password(self) -> str | None:
        for line in self.log().splitlines():
            if "password:" in line:
                return line.split("password:", 1)[1].strip()
        return None
