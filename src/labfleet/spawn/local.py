"""LocalSpawner: users' servers as local processes, each user kept apart.

The spawner only decides: which account, which home, which command, which
limits, which GPUs. Starting the process is the launcher's job
(``spawn.launch``), so a fork-server can replace exec later without touching
this file. The pieces it composes live in their own modules:
``accounts`` (system users), ``homes`` (homes and shared folders),
``limits`` (cgroups), ``gpus`` (detection and the assignment ledger).
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace
from functools import cache
from pathlib import Path
from typing import Any

from jupyterhub.spawner import Spawner, SpawnException
from jupyterhub.utils import random_port
from traitlets import Bool, Enum, Float, Integer, List, Unicode, observe

from labfleet.config.profiles import Profile
from labfleet.envs.store import describe, resolve_prefix
from labfleet.naming import server_slug, user_slug
from labfleet.spawn import diagnose
from labfleet.spawn.accounts import (
    AccountRefused,
    IsolationError,
    SystemAccount,
    ensure_account,
    is_root,
    platform_tag,
    resolve_isolation,
)
from labfleet.spawn.forkserver import launcher_for
from labfleet.spawn.gpus import (
    Detected,
    GpuDevice,
    GpuLedger,
    GpuUnavailable,
    detect_devices,
    gpu_env,
)
from labfleet.spawn.homes import (
    Owner,
    isolation_blocker,
    link_shared_folders,
    prepare_home,
    prepare_shared_folders,
)
from labfleet.spawn.launch import ExecLauncher, Launcher, LaunchSpec, launch_off_loop
from labfleet.spawn.limits import Limits, LimitsBackend, LimitsError, LimitsProbe, probe
from labfleet.spawn.processes import (
    is_alive,
    read_pid_record,
    record_pid_hook,
    signal_group,
    start_ticks,
    write_pid_record,
)
from labfleet.spawn.profile_form import ProfileChoiceMixin
from labfleet.spawn.readiness import Readiness, ReadyPipe, start_gate, wait_ready
from labfleet.spawn.runtime_dirs import RuntimeDirError, ensure_runtime_dir
from labfleet.spawn.server_env import default_singleuser
from labfleet.spawn.server_ready import server_args as ready_args
from labfleet.spawn.server_tuning import server_args


def singleuser_command(environment: str | None = None) -> list[str]:
    """``jupyterhub-singleuser`` from a Python environment (default: ours)."""
    prefix = Path(environment) if environment else Path(sys.prefix)
    return [str(prefix / "bin" / "jupyterhub-singleuser")]


@cache
def limits_probe(mode: str, parent: str) -> LimitsProbe:
    """Detect the cgroup backend once per hub process."""
    return probe(mode, parent)


@cache
def detected_gpus(configured: tuple[str, ...] | None, injected: str | None) -> Detected:
    """Detect GPUs once per hub process (``injected``: LABFLEET_GPU_DEVICES)."""
    environ = {"LABFLEET_GPU_DEVICES": injected} if injected else {}
    return detect_devices(configured, environ)


class EnvironmentMissing(RuntimeError):
    """The profile's Python environment has no ``jupyterhub-singleuser``."""


def _spawn_error(exc: BaseException, user: str = "") -> BaseException:
    """Refusals with a message meant for the user, as JupyterHub relays them (no traceback)."""
    kinds: list[tuple[type[BaseException] | tuple[type[BaseException], ...], str, int]] = [
        (AccountRefused, "account", 403),
        (GpuUnavailable, "gpu", 503),
        ((IsolationError, LimitsError, RuntimeDirError), "isolation", 500),
        (EnvironmentMissing, "environment", 500),
    ]
    for kind, reason, status in kinds:
        if isinstance(exc, kind):
            error: BaseException = diagnose.spawn_error(str(exc), reason=reason, status=status)
            return error
    if isinstance(exc, Exception) and not isinstance(exc, SpawnException):
        return diagnose.plain_spawn_error(exc, user)  # never an exception repr on the page
    return exc


_reapers: set[asyncio.Task[None]] = set()


def _reap_soon(pid: int, timeout: float = 30) -> None:
    """Collect our exited server in the background, so no zombie is left in the hub.

    An exited process can stay unreapable for a moment (its leader waits for its
    other threads to finish), after the liveness checks in ``stop`` have already
    given up on it.
    """

    async def reaper() -> None:
        deadline = asyncio.get_running_loop().time() + timeout
        while asyncio.get_running_loop().time() < deadline:
            try:
                done, _status = os.waitpid(pid, os.WNOHANG)
            except ChildProcessError:  # not our child (a restarted hub) or already collected
                return
            if done:
                return
            await asyncio.sleep(0.1)

    task = asyncio.ensure_future(reaper())
    _reapers.add(task)
    task.add_done_callback(_reapers.discard)


@dataclass(frozen=True)
class Placement:
    """Everything decided before launch: where, as whom, inside which limits."""

    home: Path
    account: SystemAccount | None
    hooks: tuple[Any, ...]
    notes: tuple[str, ...] = ()
    #: private directory for the kernels' ipc sockets (None: TCP loopback, not as root)
    runtime_dir: Path | None = None


class LocalSpawner(ProfileChoiceMixin, Spawner):  # type: ignore[misc]
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

    isolation = Enum(
        ["auto", "none", "system-users"],
        "auto",
        config=True,
        help="system-users: one system account per user (root only).",
    )
    limits_backend = Enum(
        ["auto", "v1", "v2", "none"],
        "auto",
        config=True,
        help="cgroup layout used for CPU/memory/pids limits.",
    )
    cgroup_parent = Unicode("labfleet", config=True, help="Parent control group of servers.")
    pids_max = Integer(1024, config=True, help="Most processes/threads per server.")
    kernel_preload = Bool(True, config=True, help="Fork kernels from a preloaded zygote.")
    shared_data_dir = Unicode("", config=True, help="Read-only shared folder (~/data).")
    shared_scratch_dir = Unicode("", config=True, help="Shared writable folder (~/scratch).")
    gpu_mode = Enum(["exclusive", "shared"], "exclusive", config=True)
    gpu_devices = List(
        Unicode(),
        default_value=None,
        allow_none=True,
        config=True,
        help="Device ids to hand out instead of detecting them.",
    )
    gpu_memory_fraction = Float(
        0.0, config=True, help="Cooperative per-process GPU memory share (0: none)."
    )
    gpu_wait = Float(30.0, config=True, help="Seconds an exclusive spawn waits for a GPU.")
    gpu_state_file = Unicode(
        "labfleet-data/state/gpus.json", config=True, help="GPU assignments (survive hub restarts)."
    )

    launcher: Launcher = ExecLauncher()
    launcher_kind = Enum(
        ["exec", "forkserver"],
        "exec",
        config=True,
        help="How servers start: exec, or forked from a warm preloaded process (spawn.forkserver).",
    )

    @observe("launcher_kind")
    def _warm_launcher(self, change: Any) -> None:
        self.get_launcher()  # a fork-server starts preloading before the first spawn

    def get_launcher(self) -> Launcher:
        if self.launcher_kind == "exec":
            return self.launcher
        return launcher_for(self.launcher_kind, self.log)

    _profile: Profile | None = None
    _waiting_for: str | None = None  # what the spawn page should say while we wait

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

    def data_dir(self) -> Path:
        """The platform's data directory (the parent of the homes): scopes accounts."""
        return Path(self.homes_dir).resolve().parent

    def home_path(self) -> Path:
        return Path(self.homes_dir).resolve() / user_slug(self.user.name)

    def pid_path(self) -> Path:
        return Path(self.run_dir).resolve() / f"{self.slug}.pid"

    # --- profiles (ProfileChoiceMixin checks the request, then calls apply_profile) ----
    def apply_profile(self, profile: Profile) -> None:
        """Take environment, limits and GPUs from the profile the user chose."""
        self._profile = profile
        self.mem_limit = profile.memory
        self.cpu_limit = profile.cpu

    @property
    def profile(self) -> Profile:
        if self._profile is None:  # start() without the pre-spawn hook: check here
            self.apply_profile(self.check_user_options(self.user_options))
        assert self._profile is not None
        return self._profile

    def environment_contents(self, environment: str) -> str:
        return describe(environment, self.data_dir())

    def limits(self) -> Limits:
        return Limits(cpu=self.profile.cpu, memory=self.profile.memory, pids=self.pids_max)

    def command(self) -> list[str]:
        if self.profile.environment:  # a managed name runs its current generation
            return singleuser_command(resolve_prefix(self.profile.environment, self.data_dir()))
        command = list(self.cmd)
        if command == singleuser_command() and self.isolation != "none":
            command[0] = str(default_singleuser())  # the provisioned env when ours is private
        return command

    # --- isolation, limits, GPUs -------------------------------------------------
    def isolated(self) -> bool:
        """Whether this server runs as its user's system account.

        ``auto`` and ``system-users`` isolate whenever labfleet runs as root; a server
        its account could not run is refused (``place``), never started as root.
        Only ``none`` runs servers as labfleet's own account.
        """
        return resolve_isolation(self.isolation, is_root())

    def limits_backend_in_use(self) -> LimitsBackend | None:
        return limits_probe(self.limits_backend, self.cgroup_parent).backend

    def gpu_ledger(self) -> GpuLedger:
        configured = tuple(self.gpu_devices) if self.gpu_devices is not None else None
        detected = detected_gpus(configured, os.environ.get("LABFLEET_GPU_DEVICES"))
        return GpuLedger(Path(self.gpu_state_file).resolve(), detected.devices, self.gpu_mode)

    def shared_links(self) -> dict[str, Path]:
        links = {"data": self.shared_data_dir, "scratch": self.shared_scratch_dir}
        return {name: Path(path).resolve() for name, path in links.items() if path}

    def place(self) -> Placement:
        """Account, home, shared folders and control group (blocking; run in a thread)."""
        home = self.home_path()
        executable = Path(self.command()[0])
        if not os.access(executable, os.X_OK):
            raise EnvironmentMissing(
                f"profile {self.profile.slug!r}: {executable} is missing or not executable; "
                "its environment needs jupyterhub-singleuser (pip install jupyterhub jupyterlab)"
            )
        account = owner = None
        if self.isolated():
            account = ensure_account(self.user.name, home, data_dir=self.data_dir())
            owner = Owner(account.uid, account.gid)
        prepare_home(home, owner)
        links = self.shared_links()
        prepare_shared_folders(links.get("data"), links.get("scratch"), as_root=is_root())
        notes = link_shared_folders(home, links, owner)
        if account is not None:
            self._check_usable_by(account, home)
        hooks: tuple[Any, ...] = ()
        backend = self.limits_backend_in_use()
        if backend is not None:
            backend.create(self.slug, self.limits())
            hooks = (backend.join_hook(self.slug),)
        runtime_dir = None
        if is_root():  # kernels on ipc sockets only their account can reach
            ids = (account.uid, account.gid) if account else (os.getuid(), os.getgid())
            runtime_dir = ensure_runtime_dir(platform_tag(self.data_dir()), *ids)
        return Placement(home, account, hooks, tuple(notes), runtime_dir)

    def _check_usable_by(self, account: SystemAccount, home: Path) -> None:
        """Refuse with a clear reason rather than let the server die unseen."""
        blocker = isolation_blocker(Path(self.command()[0]), home.parent)
        if blocker:
            raise IsolationError(f"{account.name} cannot start its server: {blocker}")

    async def progress(self) -> AsyncIterator[dict[str, Any]]:
        """Spawn-page events; JupyterHub stops iterating when the spawn finishes."""
        yield {"progress": 20, "message": f"Starting {self.profile.display_name}…"}
        shown = None
        while True:
            if self._waiting_for and self._waiting_for != shown:
                shown = self._waiting_for
                yield {"progress": 40, "message": shown}
            await asyncio.sleep(0.5)

    async def assign_gpus(self) -> list[GpuDevice]:
        count = self.profile.gpus
        if count <= 0:
            return []
        ledger = self.gpu_ledger()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.gpu_wait
        try:
            while True:
                try:
                    return await asyncio.to_thread(ledger.assign, self.slug, count)
                except GpuUnavailable as exc:
                    if not exc.retryable or loop.time() >= deadline:
                        raise
                    self.log.info("%s waits for a GPU: %s", self.slug, exc)
                    self._waiting_for = f"Waiting for a free GPU: {exc}"
                    await asyncio.sleep(1)
        finally:
            self._waiting_for = None

    def cleanup(self) -> None:
        """After the server is gone: kill leftovers in its cgroup, free its GPUs (blocking)."""
        backend = self.limits_backend_in_use()
        try:
            if backend is not None and not backend.remove(self.slug):
                self.log.warning("could not remove the control group of %s (still busy)", self.slug)
        except OSError as exc:
            self.log.warning("could not remove the control group of %s: %s", self.slug, exc)
        if self.profile_gpus_possible():
            try:
                self.gpu_ledger().release(self.slug)
            except (OSError, ValueError) as exc:  # an unreadable device list or state file
                self.log.warning("could not free the GPUs of %s: %s", self.slug, exc)

    def profile_gpus_possible(self) -> bool:
        """Whether this server could hold GPUs (any profile asks for some)."""
        return any(int(p.get("gpus") or 0) > 0 for p in self.labfleet_profiles or [])

    # --- launch ------------------------------------------------------------------
    def build_spec(self, placement: Placement, gpus: list[GpuDevice]) -> LaunchSpec:
        home, account = placement.home, placement.account
        command = self.command()
        self.notebook_dir = str(home)
        env = self.get_env()
        login = account.name if account else self.user.name
        env.update({"HOME": str(home), "USER": login, "LOGNAME": login, "SHELL": "/bin/bash"})
        env["PATH"] = os.pathsep.join([str(Path(command[0]).parent), env.get("PATH", os.defpath)])
        fraction = self.gpu_memory_fraction or None
        env.update(gpu_env(gpus, self.gpu_mode, fraction))
        uid = account.uid if account else None
        argv = [*command, *self.get_args(), *self.extra_args(uid)]
        if placement.runtime_dir is not None:
            env["JUPYTER_RUNTIME_DIR"] = str(placement.runtime_dir)
            argv.append("--KernelManager.transport=ipc")
        return LaunchSpec(
            argv=argv,
            env=env,
            cwd=home,
            uid=uid,
            gid=account.gid if account else None,
            groups=(),
            log_path=Path(self.logs_dir).resolve() / f"{self.slug}.log",
            # the server records its own pid first: no instant without a pid file
            pre_exec=(record_pid_hook(self.pid_path()), *placement.hooks),
            kernel_zygote=self.kernel_preload,
        )

    def extra_args(self, uid: int | None) -> list[str]:
        runs_as_root = (uid is None and os.getuid() == 0) or uid == 0
        root = ["--ServerApp.allow_root=True"] if runs_as_root else []
        # server_tuning: compression; server_ready: "I serve" over the hub's pipe (issue 16)
        return [*server_args(self.kernel_preload), *ready_args(), *root]

    # --- lifecycle -------------------------------------------------------------
    async def start(self) -> tuple[str, int]:
        await self._kill_orphan()
        profile = self.profile  # applied by the pre-spawn hook of this very spawn
        self.log.info("Starting %s with profile %r", self.slug, profile.slug)
        if not getattr(self, "port", 0):
            self.port = random_port()
        admitted = await start_gate().admit()  # a few starts at a time, FIFO (issue 16)
        pipe = ReadyPipe()  # the server says "I serve" over it (spawn.server_ready)
        try:
            placement = await asyncio.to_thread(self.place)
            for note in placement.notes:
                self.log.info(note)
            gpus = await self.assign_gpus()
            spec = replace(self.build_spec(placement, gpus), ready_fd=pipe.write_fd)
            self.pid = await launch_off_loop(self.get_launcher(), spec)  # not the default pool
        except BaseException as exc:
            admitted.release()
            pipe.close()
            await self._kill_orphan()  # a child that recorded itself before the launch failed
            raise _spawn_error(exc, self.user.name) from exc
        pipe.close_write()  # the server holds its own copy: its exit closes the pipe
        self.pid_ticks = start_ticks(self.pid) or 0
        if gpus:
            await asyncio.to_thread(self.gpu_ledger().bind, self.slug, self.pid, self.pid_ticks)
        self._write_pid_file()
        # answer when the server says it serves, instead of JupyterHub's slower HTTP polling
        ticks = self.pid_ticks or None
        ip = self.ip or "127.0.0.1"
        try:
            readiness = await wait_ready(pipe, ip, self.port, self.pid, ticks, self.start_timeout)
        finally:
            admitted.release()  # a cancelled start (timeout, stop) frees its slot at once too
        if readiness is Readiness.EXITED or not is_alive(self.pid, ticks):
            raise await asyncio.to_thread(self._start_failure)  # at once, with its log tail
        if readiness is not Readiness.SIGNALLED:
            self.log.info("server %s: %s", self.slug, readiness.value)
        diagnose.clear_end(self._state_dir(), self.slug)
        return (ip, self.port)

    # --- diagnosis (spawn.diagnose): why a server ended, in plain words ----------
    def _state_dir(self) -> Path:
        return Path(self.run_dir).resolve().parent

    def _log_path(self) -> Path:
        return Path(self.logs_dir).resolve() / f"{self.slug}.log"

    def _start_failure(self) -> BaseException:
        memory = self._profile.memory if self._profile else None
        backend = self.limits_backend_in_use()
        return diagnose.start_failure(self.user.name, self.slug, self._log_path(), backend, memory)

    def _note_end(self) -> None:
        memory = self._profile.memory if self._profile else None
        end = diagnose.note_end(
            self._state_dir(), self.slug, self.limits_backend_in_use(), memory, self._log_path()
        )
        if end is not None:
            self.log.warning("server %s ended: %s", self.slug, end.message)

    async def poll(self) -> int | None:
        if self.pid and is_alive(self.pid, self.pid_ticks or None):
            return None
        had_server = bool(self.pid)
        if not had_server:
            if getattr(self, "_start_pending", False):
                return None  # our own start is launching it (its pid file may exist already)
            # no pid saved: a hub killed between launch and saving state. A pid file
            # with a live process, or anything in the server's cgroup, is a server the
            # hub does not believe in: stop it (deleting the file alone would hide it
            # from the orphan sweep).
            await self._kill_orphan()
            return 0
        self.clear_state()
        self._remove_pid_file()
        if had_server:
            await asyncio.to_thread(self._note_end)  # before cleanup removes its cgroup
            await asyncio.to_thread(self.cleanup)
        return 0

    async def stop(self, now: bool = False) -> None:
        if self.pid:
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
            _reap_soon(self.pid)
            self._remove_pid_file()
        # and processes that left the session (setsid) are still in the cgroup
        await asyncio.to_thread(self.cleanup)

    async def _wait_gone(self, timeout: float) -> None:
        deadline = asyncio.get_running_loop().time() + timeout
        while asyncio.get_running_loop().time() < deadline:
            if not is_alive(self.pid, self.pid_ticks or None):
                return
            await asyncio.sleep(0.05)

    # --- orphans (a hub killed between launch and saving state) ----------------
    def _write_pid_file(self) -> None:
        write_pid_record(self.pid_path(), self.pid, self.pid_ticks)

    def _remove_pid_file(self) -> None:
        self.pid_path().unlink(missing_ok=True)

    async def _kill_orphan(self) -> None:
        """Stop a server of this slug the hub does not believe in, and what it left.

        Its pid file names the server (SIGTERM first, so it can save); its control
        group is the ground truth for anything else of it (``cleanup`` kills what
        is left there), pid file or not.
        """
        path = self.pid_path()
        entry = read_pid_record(path)
        if entry is not None and is_alive(*entry):
            pid, ticks = entry
            self.log.warning("Stopping orphaned server process %s for %s", pid, self.slug)
            signal_group(pid, signal.SIGTERM)
            for _ in range(100):
                if not is_alive(pid, ticks):
                    break
                await asyncio.sleep(0.05)
            signal_group(pid, signal.SIGKILL)
        path.unlink(missing_ok=True)
        await asyncio.to_thread(self.cleanup)  # its kernels' cgroup and its GPUs
