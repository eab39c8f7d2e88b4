"""Launching a user's server process, behind one small interface.

The spawner decides *what* to run (policy, accounts, limits) and builds a
:class:`LaunchSpec`; a :class:`Launcher` only turns that spec into a running
process. Plain ``exec`` is the default; a preloaded fork-server can replace it
without touching policy.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from labfleet.spawn.server_ready import READY_FD_ENV


@dataclass(frozen=True)
class LaunchSpec:
    argv: list[str]
    env: dict[str, str]
    cwd: Path
    log_path: Path
    uid: int | None = None
    gid: int | None = None
    groups: tuple[int, ...] = ()
    #: called in the child before exec, as root, before privileges are dropped
    #: (e.g. joining a cgroup); must be async-signal-safe-ish: no locks, no logging
    pre_exec: tuple[Callable[[], None], ...] = field(default=())
    #: write end of the hub's readiness pipe (``spawn.readiness.ReadyPipe``): the server
    #: inherits it, named by ``LABFLEET_READY_FD``, and says over it when it serves
    ready_fd: int | None = None
    #: the server loads the kernel zygote extension (``local.kernel_preload``): a launcher
    #: that can fork the zygote from a preloaded image does (the fork-server); exec ignores it
    kernel_zygote: bool = False

    def env_with_ready_fd(self, fd: int | None) -> dict[str, str]:
        """The server's environment, naming the readiness pipe's number in *its* process."""
        if fd is None:
            return self.env
        return {**self.env, READY_FD_ENV: str(fd)}


class Launcher(Protocol):
    def launch(self, spec: LaunchSpec) -> int:
        """Start the process described by ``spec`` and return its pid."""
        ...


def _child_setup(spec: LaunchSpec) -> Callable[[], None]:
    def setup() -> None:
        for hook in spec.pre_exec:
            hook()
        if spec.gid is not None:
            os.setgroups(list(spec.groups))
            os.setresgid(spec.gid, spec.gid, spec.gid)
        if spec.uid is not None:
            os.setresuid(spec.uid, spec.uid, spec.uid)
        os.chdir(spec.cwd)

    return setup


class ExecLauncher:
    """Fork + exec, in a new session so hub signals and restarts never reach it."""

    def launch(self, spec: LaunchSpec) -> int:
        spec.log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(spec.log_path, "ab") as log:
            proc = subprocess.Popen(
                spec.argv,
                env=spec.env_with_ready_fd(spec.ready_fd),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=_child_setup(spec),
                close_fds=True,
                pass_fds=() if spec.ready_fd is None else (spec.ready_fd,),
            )
        # the hub reaps children via poll(); keep no Popen reference so a restarted
        # hub and this one behave the same (state is the pid alone)
        _detach(proc)
        return proc.pid


def _detach(proc: subprocess.Popen[bytes]) -> None:
    """Forget the Popen object without letting its finaliser wait on the child."""
    proc.returncode = 0  # marks it done for subprocess' bookkeeping; we poll by pid


#: threads for launches; separate from asyncio's default pool, which password hashing
#: (logins) and every other ``to_thread`` share: a launch may wait (up to the fork-server's
#: ``warm_wait``) for a cold fork-server, and a burst of those must not stall logins
LAUNCH_THREADS = 8
_pool: list[ThreadPoolExecutor] = []
_pool_lock = threading.Lock()


def launch_pool() -> ThreadPoolExecutor:
    """The process-wide launch executor (made on first use)."""
    with _pool_lock:
        if not _pool:
            _pool.append(
                ThreadPoolExecutor(max_workers=LAUNCH_THREADS, thread_name_prefix="labfleet-launch")
            )
        return _pool[0]


async def launch_off_loop(launcher: Launcher, spec: LaunchSpec) -> int:
    """``launcher.launch(spec)`` in the launch pool, awaited from the event loop."""
    loop = asyncio.get_running_loop()
    return await loop.run_in_executor(launch_pool(), launcher.launch, spec)
