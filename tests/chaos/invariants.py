"""What must hold after any component of a running platform was SIGKILLed.

Read from the outside, as an operator would: /proc (processes, their parents,
command lines and environments), the platform's records (pid files, control
groups) and the hub's REST API. Each check returns a list of problems (empty:
it holds), so a waiting loop can retry until the platform has converged and a
failure can say exactly what is wrong.
"""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from labfleet.hub.settings import cgroup_parent_for
from labfleet.naming import server_slug
from labfleet.spawn.forkserver_main import PROCESS_NAME as FORKSERVER_NAME
from labfleet.spawn.limits.base import read_pids
from labfleet.spawn.limits.platform import parent_dirs
from labfleet.spawn.processes import is_alive, read_pid_record, start_ticks
from tests.support.platform import Platform


@dataclass(frozen=True)
class Proc:
    pid: int
    ppid: int
    cmd: str
    cwd: str
    env: dict[str, str]
    #: session id: a user's server forked from a fork-server leads its own session
    sid: int
    #: the name ps shows: a fork-server's children keep its command line but not its name
    comm: str = ""


def processes() -> list[Proc]:
    found: list[Proc] = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            status = (entry / "status").read_text()
            if "\nState:\tZ" in status:
                continue
            cmd = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            cwd = os.readlink(entry / "cwd")
            raw = (entry / "environ").read_bytes().split(b"\0")
            stat = (entry / "stat").read_text()
            comm = (entry / "comm").read_text().strip()
        except OSError:
            continue
        ppid = next(int(line.split()[1]) for line in status.splitlines() if line.startswith("PPid"))
        env = dict(item.decode(errors="replace").split("=", 1) for item in raw if b"=" in item)
        sid = int(stat[stat.rfind(")") + 2 :].split()[3])
        found.append(Proc(int(entry.name), ppid, cmd.strip(), cwd, env, sid, comm))
    return found


def hub_pid(data_dir: Path) -> int | None:
    try:
        pid = int((data_dir / "state" / "jupyterhub.pid").read_text())
    except (OSError, ValueError):
        return None
    return pid if is_alive(pid) else None


def proxy_pid(data_dir: Path) -> int | None:
    try:
        pid = int((data_dir / "state" / "proxy.pid").read_text())
    except (OSError, ValueError):
        return None
    return pid if is_alive(pid) else None


def hub_port(data_dir: Path) -> int:
    return int(json.loads((data_dir / "state" / "ports.json").read_text())["hub"])


def supervisor_token(data_dir: Path) -> str:
    return (data_dir / "secrets" / "supervisor_token").read_text().strip()


def children(pid: int, everything: list[Proc]) -> list[Proc]:
    return [p for p in everything if p.ppid == pid]


def active_servers(platform: Platform) -> dict[str, dict[str, bool]]:
    """{server slug: {"ready": bool}} of what the hub believes runs or starts."""
    answer = httpx.get(
        f"{platform.url}/hub/api/users?state=active",
        headers={"Authorization": f"token {supervisor_token(platform.data_dir)}"},
        timeout=10,
    )
    answer.raise_for_status()
    return {
        server_slug(user["name"], name): {"ready": bool(server.get("ready"))}
        for user in answer.json()
        for name, server in user.get("servers", {}).items()
    }


def token_valid(platform: Platform, token: str) -> bool:
    answer = httpx.get(
        f"{platform.url}/hub/api/user", headers={"Authorization": f"token {token}"}, timeout=10
    )
    if answer.status_code not in (200, 403):
        raise RuntimeError(f"token check answered {answer.status_code}")
    return answer.status_code == 200


@dataclass
class Watch:
    """What the chaos test saw over its life: every hub, every service token."""

    platform: Platform
    hubs: set[int] = field(default_factory=set)
    #: service token -> (pid, start ticks, command) of the process that held it
    tokens: dict[str, tuple[int, int, str]] = field(default_factory=dict)

    def note(self) -> None:
        """Remember the current hub and the tokens of the services running now."""
        hub = hub_pid(self.platform.data_dir)
        if hub:
            self.hubs.add(hub)
        for proc in self.services(processes()):
            token = proc.env.get("JUPYTERHUB_API_TOKEN")
            ticks = start_ticks(proc.pid)
            if token and ticks:
                self.tokens.setdefault(token, (proc.pid, ticks, proc.cmd))

    def services(self, everything: list[Proc]) -> list[Proc]:
        """Hub services (culler, dashboard) talking to this platform's hub."""
        marker = f":{hub_port(self.platform.data_dir)}/"
        return [
            p
            for p in everything
            if "JUPYTERHUB_SERVICE_NAME" in p.env and marker in p.env.get("JUPYTERHUB_API_URL", "")
        ]

    def problems(self) -> list[str]:
        data_dir = self.platform.data_dir
        everything = processes()
        problems: list[str] = []
        hub = hub_pid(data_dir)
        if hub is None:
            return ["no hub runs"]
        self.hubs.add(hub)
        hubs = [
            p
            for p in everything
            if p.cwd == str(data_dir) and " -m jupyterhub " in f" {p.cmd} " and p.pid != hub
        ]
        problems += [f"a second hub runs: {p.pid} {p.cmd}" for p in hubs]
        problems += [
            f"service {p.pid} ({p.cmd}) is not a child of the hub {hub}"
            for p in self.services(everything)
            if p.ppid != hub
        ]
        for proc in everything:
            # by name: a server's kernel zygote and its kernels are forked from the fork-server's
            # image, so they carry its command line (and its --parent) too
            forkserver = "forkserver_main" in proc.cmd and proc.comm == FORKSERVER_NAME
            if forkserver and "--parent" in proc.cmd:
                parent = int(proc.cmd.split("--parent", 1)[1].split()[0])
                if parent in self.hubs and proc.ppid != hub:
                    problems.append(f"fork-server {proc.pid} of a dead hub {parent} still runs")
        proxy = proxy_pid(data_dir)
        if proxy is None:
            problems.append("no proxy runs")
        port = f"--port {self.platform.port}"
        for proc in everything:
            ours = "labfleet-proxy" in proc.cmd and port in proc.cmd
            if ours and proc.pid != proxy and proc.ppid != proxy:
                problems.append(f"a second proxy runs: {proc.pid} {proc.cmd}")
        problems += self.server_problems()
        problems += self.token_problems(everything)
        return problems

    def server_problems(self) -> list[str]:
        data_dir = self.platform.data_dir
        try:
            active = active_servers(self.platform)
        except (httpx.HTTPError, OSError) as exc:
            return [f"the hub API does not answer: {exc}"]
        problems: list[str] = []
        running: dict[str, set[int]] = {}
        for path in (data_dir / "state" / "servers").glob("*.pid"):
            entry = read_pid_record(path)
            if entry is not None and is_alive(*entry):
                running.setdefault(path.stem, set()).add(entry[0])
        for parent in parent_dirs(cgroup_parent_for(data_dir)):
            for group in (p for p in parent.iterdir() if p.is_dir()):
                pids = read_pids([group / "cgroup.procs"])
                if pids:
                    running.setdefault(group.name, set()).update(pids)
        for slug, pids in sorted(running.items()):
            if slug not in active:
                problems.append(f"server {slug} runs ({sorted(pids)}) but the hub does not know it")
        for slug, state in sorted(active.items()):
            if state["ready"] and slug not in running:
                problems.append(f"the hub lists {slug} as ready but no process of it runs")
        return problems

    def token_problems(self, everything: list[Proc]) -> list[str]:
        live = {p.env.get("JUPYTERHUB_API_TOKEN") for p in self.services(everything)}
        problems = []
        for token, (pid, ticks, cmd) in self.tokens.items():
            if token in live or is_alive(pid, ticks):
                continue
            with contextlib.suppress(httpx.HTTPError, RuntimeError):
                if token_valid(self.platform, token):
                    problems.append(f"the token of the dead service {pid} ({cmd}) is still valid")
        return problems


def integrity_problems(data_dir: Path) -> list[str]:
    problems = []
    for name in ("jupyterhub.sqlite", "accounts.sqlite"):
        with sqlite3.connect(data_dir / name) as db:
            result = db.execute("PRAGMA integrity_check").fetchone()[0]
        if result != "ok":
            problems.append(f"{name}: {result}")
    return problems
