"""LocalSpawner: users' servers as local processes, each in its own directory.

The spawner only decides: which home, which account, which command, which
limits. Starting the process is the launcher's job (``spawn.launch``), so a
fork-server can replace exec later without touching this file.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from pathlib import Path
from typing import Any

from jupyterhub.spawner import Spawner
from jupyterhub.utils import random_port
from traitlets import Integer, List, Unicode

from labfleet.naming import server_slug, user_slug
from labfleet.spawn.launch import ExecLauncher, Launcher, LaunchSpec
from labfleet.spawn.processes import is_alive, signal_group, start_ticks


def singleuser_command(environment: str | None = None) -> list[str]:
    """``jupyterhub-singleuser`` from a Python environment (default: ours)."""
    prefix = Path(environment) if environment else Path(sys.prefix)
    return [str(prefix / "bin" / "jupyterhub-singleuser")]


class LocalSpawner(Spawner):  # type: ignore[misc]
    """Runs ``jupyterhub-singleuser`` as a local process with a per-user home."""

    homes_dir = Unicode(
        "labfleet-data/homes", config=True, help="Directory holding one home per user."
    )
    logs_dir = Unicode("labfleet-data/logs/servers", config=True, help="Per-server log files.")
    run_dir = Unicode(
        "labfleet-data/state/servers",
        config=True,
        help="Per-server pid files, used to find orphans after a hub crash.",
    )
    term_timeout = Integer(10, config=True, help="Seconds to wait after SIGTERM before SIGKILL.")
    kill_timeout = Integer(5, config=True, help="Seconds to wait after SIGKILL.")
    pid = Integer(0)
    pid_ticks = Integer(0)

    labfleet_profiles: List[dict[str, Any]] = List(
        config=True, help="Profiles from labfleet.yaml (plain dicts)."
    )

    launcher: Launcher = ExecLauncher()

    # --- state ---------------------------------------------------------------
    def load_state(self, state: dict[str, Any]) -> None:
        super().load_state(state)
        self.pid = int(state.get("pid", 0))
        self.pid_ticks = int(state.get("pid_ticks", 0))

    def get_state(self) -> dict[str, Any]:
        state: dict[str, Any] = super().get_state()
        if self.pid:
            state["pid"] = self.pid
            state["pid_ticks"] = self.pid_ticks
        return state

    def clear_state(self) -> None:
        super().clear_state()
        self.pid = 0
        self.pid_ticks = 0

    # --- names and paths -------------------------------------------------------
    @property
    def slug(self) -> str:
        return server_slug(self.user.name, self.name or "")

    def home_path(self) -> Path:
        return Path(self.homes_dir).resolve() / user_slug(self.user.name)

    def pid_path(self) -> Path:
        return Path(self.run_dir).resolve() / f"{self.slug}.pid"

    # --- hooks for subclasses (isolation, limits, GPUs) -----------------------
    def prepare_home(self) -> Path:
        home = self.home_path()
        home.mkdir(mode=0o700, parents=True, exist_ok=True)
        return home

    def process_identity(self, home: Path) -> tuple[int | None, int | None, tuple[int, ...]]:
        """(uid, gid, groups) to run as; None keeps the hub's own identity."""
        return None, None, ()

    def extra_args(self, uid: int | None) -> list[str]:
        runs_as_root = (uid is None and os.getuid() == 0) or uid == 0
        return ["--ServerApp.allow_root=True"] if runs_as_root else []

    # --- lifecycle -------------------------------------------------------------
    def build_spec(self) -> LaunchSpec:
        home = self.prepare_home()
        uid, gid, groups = self.process_identity(home)
        env = self.get_env()
        env.update({"HOME": str(home), "USER": self.user.name, "SHELL": "/bin/bash"})
        env["PATH"] = os.pathsep.join([str(Path(self.cmd[0]).parent), env.get("PATH", os.defpath)])
        self.notebook_dir = str(home)
        argv = [*self.cmd, *self.get_args(), *self.extra_args(uid)]
        return LaunchSpec(
            argv=argv,
            env=env,
            cwd=home,
            uid=uid,
            gid=gid,
            groups=groups,
            log_path=Path(self.logs_dir).resolve() / f"{self.slug}.log",
        )

    async def start(self) -> tuple[str, int]:
        await self._kill_orphan()
        port: int = self.port
        if not port:
            self.port = port = random_port()
        spec = self.build_spec()
        self.pid = self.launcher.launch(spec)
        self.pid_ticks = start_ticks(self.pid) or 0
        self._write_pid_file()
        return (self.ip or "127.0.0.1", port)

    async def poll(self) -> int | None:
        if self.pid and is_alive(self.pid, self.pid_ticks or None):
            return None
        self.clear_state()
        self._remove_pid_file()
        return 0

    async def stop(self, now: bool = False) -> None:
        if not self.pid:
            return
        steps = (
            [(signal.SIGKILL, self.kill_timeout)]
            if now
            else [(signal.SIGTERM, self.term_timeout), (signal.SIGKILL, self.kill_timeout)]
        )
        for sig, timeout in steps:
            if not is_alive(self.pid, self.pid_ticks or None):
                break
            signal_group(self.pid, sig)
            await self._wait_gone(timeout)
        # kernels in the server's session may outlive a killed server
        signal_group(self.pid, signal.SIGKILL)
        self._remove_pid_file()

    async def _wait_gone(self, timeout: float) -> None:
        deadline = asyncio.get_running_loop().time() + timeout
        while asyncio.get_running_loop().time() < deadline:
            if not is_alive(self.pid, self.pid_ticks or None):
                return
            await asyncio.sleep(0.05)

    # --- orphans (a hub killed between launch and saving state) ----------------
    def _write_pid_file(self) -> None:
        path = self.pid_path()
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(f"{self.pid} {self.pid_ticks}\n")

    def _remove_pid_file(self) -> None:
        self.pid_path().unlink(missing_ok=True)

    async def _kill_orphan(self) -> None:
        path = self.pid_path()
        try:
            pid_text, ticks_text = path.read_text().split()
        except (OSError, ValueError):
            return
        pid, ticks = int(pid_text), int(ticks_text)
        if is_alive(pid, ticks):
            self.log.warning("Stopping orphaned server process %s for %s", pid, self.slug)
            signal_group(pid, signal.SIGTERM)
            for _ in range(100):
                if not is_alive(pid, ticks):
                    break
                await asyncio.sleep(0.05)
            signal_group(pid, signal.SIGKILL)
        path.unlink(missing_ok=True)
