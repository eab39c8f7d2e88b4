"""Preloaded kernels in a member's server: fork them from a kernel zygote (issue 16).

A kernel's start is mostly a fresh interpreter importing ipykernel and IPython
(about a second of CPU on a busy 2-core machine), and JupyterLab silently drops
a cell run before its kernel connection is up, so that second can lose a
member's first command. This jupyter_server extension starts, when the server
loads, one zygote process per server (``spawn.kernel_zygote_main``) that
imports those modules once; each kernel start is then a fork of it.

* **Who runs it.** The zygote is a child of the server: the member's uid, the
  server's cgroup and limits, its environment. Each kernel gets the kernelspec's
  environment and the notebook's directory from the kernel manager, as a plain
  start would.
* **Where it comes from.** Under the fork-server, the fork-server's child forks
  the zygote from the preloaded image just before it becomes the server, and
  names it in ``LABFLEET_KERNEL_ZYGOTE``: no import is paid and its pages stay
  shared with the fork-server's (``kernel_zygote_main.fork_beside_server``).
  Otherwise (exec, Kubernetes) the extension starts one as a new interpreter.
* **Which kernels.** Only the default ``python3`` kernelspec of the server's own
  interpreter (``<this python> -m ipykernel_launcher ...``) with the same
  ``PYTHON*``/``LD_*`` variables as the zygote; any other kernel (other
  environments, ``labfleet envs``) starts the normal way.
* **Failures.** If the zygote is not up, dies, or refuses, the kernel starts the
  normal way and a WARNING says why; a start is never lost.
* **Lifetime.** The zygote gets SIGKILL when the server dies (``PR_SET_PDEATHSIG``)
  and exits when the server closes its socket; kernels get SIGKILL when the
  zygote dies, so nothing outlives the server.

Turned on by :func:`server_args` (``local.kernel_preload``). The kernel manager
class is switched at extension load, so an environment without labfleet (where
jupyter_server skips the extension) keeps the stock manager.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import select
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

from jupyter_client.provisioning.local_provisioner import LocalProvisioner
from jupyter_server.services.kernels.kernelmanager import ServerKernelManager

from labfleet.spawn.kernel_zygote_main import INHERITED_ENV
from labfleet.spawn.server_tuning import KERNEL_ZYGOTE as EXTENSION

MANAGER = f"{EXTENSION}.ZygoteKernelManager"
ZYGOTE_MAIN = "labfleet.spawn.kernel_zygote_main"
#: how long a kernel start waits for a zygote still importing (it is still faster than a fresh one)
READY_TIMEOUT = 20.0
#: how long a kernel start waits for the kernel to bind its sockets, and how often it looks
LISTEN_TIMEOUT = 10.0
LISTEN_POLL = 0.005
MAX_PACKET = 1 << 20
log = logging.getLogger(__name__)


def interpreter_env(env: dict[str, str] | os._Environ[str]) -> dict[str, str]:
    """The variables that change what an interpreter imports: a kernel needs the zygote's."""
    return {k: v for k, v in env.items() if k.startswith(("PYTHON", "LD_"))}


def fits_zygote(
    argv: list[str], env: dict[str, str], python: str, zygote_env: dict[str, str]
) -> str:
    """Why this kernel cannot be forked from the zygote ('' when it can). Pure."""
    if len(argv) < 3 or argv[1:3] != ["-m", "ipykernel_launcher"]:
        return "not an ipykernel_launcher kernelspec"
    if os.path.realpath(argv[0]) != os.path.realpath(python) and argv[0] not in (
        "python",
        "python3",
    ):
        return f"another interpreter ({argv[0]})"
    if interpreter_env(env) != zygote_env:
        return "other PYTHON*/LD_* variables"
    return ""


class ZygoteKernel:
    """A forked kernel, with the part of ``subprocess.Popen`` the provisioner uses."""

    stdin = stdout = stderr = None

    def __init__(self, zygote: Zygote, pid: int, pidfd: int) -> None:
        self.zygote, self.pid, self.pidfd = zygote, pid, pidfd
        self.returncode: int | None = None

    def poll(self) -> int | None:
        if self.returncode is not None:
            return self.returncode
        readable, _, _ = select.select([self.pidfd], [], [], 0)
        if not readable:
            return None
        self.returncode = self.zygote.exit_status(self.pid)
        os.close(self.pidfd)
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        deadline = None if timeout is None else time.monotonic() + timeout
        while (code := self.poll()) is None:
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0:
                raise subprocess.TimeoutExpired([str(self.pid)], timeout or 0)
            select.select([self.pidfd], [], [], left)
        return code

    def send_signal(self, signum: int) -> None:
        if self.poll() is None:
            signal.pidfd_send_signal(self.pidfd, signum)

    def terminate(self) -> None:
        self.send_signal(signal.SIGTERM)

    def kill(self) -> None:
        self.send_signal(signal.SIGKILL)


class ForkedZygote:
    """The part of ``subprocess.Popen`` a :class:`Zygote` uses, for one forked beside us.

    The fork-server's child forked it before becoming this server, so it is our child
    and ``waitpid`` reaps it.
    """

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.returncode: int | None = None

    def poll(self) -> int | None:
        if self.returncode is None:
            try:
                pid, status = os.waitpid(self.pid, os.WNOHANG)
            except ChildProcessError:
                self.returncode = -1  # reaped elsewhere: gone all the same
            else:
                if pid:
                    self.returncode = os.waitstatus_to_exitcode(status)
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        deadline = None if timeout is None else time.monotonic() + timeout
        while (code := self.poll()) is None:
            if deadline is not None and time.monotonic() >= deadline:
                raise subprocess.TimeoutExpired([str(self.pid)], timeout or 0)
            time.sleep(0.02)
        return code

    def kill(self) -> None:
        if self.poll() is None:
            os.kill(self.pid, signal.SIGKILL)


class Zygote:
    """The server's end of one zygote process."""

    def __init__(self, sock: socket.socket, process: subprocess.Popen[bytes] | ForkedZygote):
        self.sock = sock
        self.process = process
        self.python = sys.executable
        self.env = interpreter_env(os.environ)
        self.lock = threading.Lock()
        self.exits: dict[int, int] = {}
        self.ready = False
        self.failed = ""

    @classmethod
    def start(cls) -> Zygote:
        """A new interpreter importing what a kernel needs (under exec, or as a fallback)."""
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        fd, parent = str(theirs.fileno()), str(os.getpid())
        with theirs:
            process = subprocess.Popen(
                [sys.executable, "-m", ZYGOTE_MAIN, "--fd", fd, "--parent", parent],
                pass_fds=[theirs.fileno()],
                stdin=subprocess.DEVNULL,
                cwd=os.path.expanduser("~"),
            )
        return cls(ours, process)

    @classmethod
    def inherited(cls, named: str) -> Zygote:
        """The zygote the fork-server's child forked beside us (``"FD:PID"``, pure parse)."""
        fd, _, pid = named.partition(":")
        return cls(socket.socket(fileno=int(fd)), ForkedZygote(int(pid)))

    def _read(self, timeout: float | None) -> tuple[dict[str, Any], list[int]] | None:
        """The next message of any kind, exit notices filed in ``exits``; None on timeout."""
        if not select.select([self.sock], [], [], timeout)[0]:
            return None
        data, fds, _, _ = socket.recv_fds(self.sock, MAX_PACKET, 1)
        if not data:
            raise ConnectionError("the kernel zygote is gone")
        message = json.loads(data)
        if "exit" in message:
            self.exits[int(message["exit"])] = int(message["status"])
        return message, fds

    def _recv(self, timeout: float | None) -> tuple[dict[str, Any], list[int]] | None:
        """One answer to a request (exit notices are filed away and skipped); None on timeout."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            left = None if deadline is None else max(0.0, deadline - time.monotonic())
            got = self._read(left)
            if got is None or "exit" not in got[0]:
                return got

    def _wait_ready(self, timeout: float) -> None:
        if self.ready:
            return
        got = self._recv(timeout)
        if got is None:
            raise TimeoutError(f"the kernel zygote was not ready in {timeout:.0f} s")
        if not got[0].get("ready"):
            raise ConnectionError(f"unexpected first message {got[0]!r}")
        self.ready = True

    def spawn(self, argv: list[str], env: dict[str, str], cwd: str) -> ZygoteKernel:
        """Fork a kernel (blocking: run it off the event loop)."""
        with self.lock:
            if self.failed:
                raise ConnectionError(self.failed)
            try:
                self._wait_ready(READY_TIMEOUT)
                self.sock.send(
                    json.dumps(
                        {"argv": ["ipykernel_launcher", *argv[3:]], "env": env, "cwd": cwd}
                    ).encode()
                )
                got = self._recv(READY_TIMEOUT)
            except (OSError, ValueError) as exc:
                self.failed = f"{type(exc).__name__}: {exc}"
                self.process.poll()  # reap it if it died
                raise
            if got is None:
                self.failed = "no answer to a kernel request"
                raise TimeoutError(self.failed)
            message, fds = got
            if "pid" not in message or not fds:
                for fd in fds:
                    os.close(fd)
                raise RuntimeError(message.get("error", f"unexpected answer {message!r}"))
            return ZygoteKernel(self, int(message["pid"]), fds[0])

    def exit_status(self, pid: int, timeout: float = 1.0) -> int:
        """The status the zygote reported for a kernel that ended (-1 if it did not say).

        Called on the event loop: it waits at most briefly for a spawn in progress.
        """
        if pid not in self.exits and self.lock.acquire(timeout=0.2):
            try:
                deadline = time.monotonic() + timeout
                # each notice read counts: waiting for an answer instead (``_recv``) held
                # the server's event loop for the whole timeout on every kernel shutdown
                while pid not in self.exits and time.monotonic() < deadline:
                    if self._read(max(0.0, deadline - time.monotonic())) is None:
                        break
            except (OSError, ValueError):
                pass
            finally:
                self.lock.release()
        return self.exits.pop(pid, -1)

    def stop(self) -> None:
        self.sock.close()  # the zygote exits on end of file
        try:
            self.process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


_zygote: list[Zygote] = []


def current_zygote() -> Zygote | None:
    return _zygote[0] if _zygote else None


def listen_addresses(info: dict[str, Any]) -> list[tuple[str, str, int]]:
    """(transport, host, port) of each socket in a kernel's connection info (pure)."""
    transport = str(info.get("transport") or "tcp")
    ip = str(info.get("ip") or "127.0.0.1")
    if transport == "tcp" and ip in ("0.0.0.0", "*"):  # noqa: S104  (a kernel bound to all)
        ip = "127.0.0.1"
    return [
        (transport, ip, int(value))
        for key, value in sorted(info.items())
        if key.endswith("_port") and isinstance(value, int) and value > 0
    ]


async def _accepts(transport: str, ip: str, port: int) -> bool:
    if transport == "ipc":
        return os.path.exists(f"{ip}-{port}")
    try:
        _, writer = await asyncio.open_connection(ip, port)
    except OSError:
        return False
    writer.close()
    with contextlib.suppress(OSError):
        await writer.wait_closed()
    return True


async def wait_listening(
    info: dict[str, Any], alive: Callable[[], bool], timeout: float = LISTEN_TIMEOUT
) -> bool:
    """Until the kernel has bound every socket (True), or ended or took too long (False).

    Why wait: jupyter_server answers a kernel start before the kernel listens,
    and the websocket that connects next subscribes to the kernel's IOPub while
    zmq is still retrying the connection (every 100 ms). When the kernel's
    answer to the server's first ``kernel_info_request`` came before the
    subscription, its status messages were lost and the server asked again
    only 0.5 s later: a member's first cell waited ~0.5 s in about half the
    starts. Once the kernel's sockets are bound, the subscription is in place
    before the kernel has finished initialising and can answer.
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    pending = listen_addresses(info)
    while pending:
        if await _accepts(*pending[0]):
            pending.pop(0)
            continue
        if not alive() or loop.time() > deadline:
            return False
        await asyncio.sleep(LISTEN_POLL)
    return True


class ZygoteKernelManager(ServerKernelManager):
    """The server's kernel manager, forking default python3 kernels from the zygote.

    A start returns once the kernel listens (:func:`wait_listening`), forked or not.
    """

    async def _async_launch_kernel(self, kernel_cmd: list[str], **kw: Any) -> None:
        await self._launch(kernel_cmd, **kw)
        provisioner = self.provisioner
        process = getattr(provisioner, "process", None)
        if type(provisioner) is not LocalProvisioner or process is None:
            return
        info = dict(provisioner.connection_info)
        if not await wait_listening(info, lambda: process.poll() is None):
            self.log.info("kernel %s: not listening yet; the server will retry", self.kernel_id)

    async def _launch(self, kernel_cmd: list[str], **kw: Any) -> None:
        zygote = current_zygote()
        provisioner = self.provisioner
        if zygote is not None and type(provisioner) is LocalProvisioner:
            env = {str(k): str(v) for k, v in (kw.get("env") or os.environ).items()}
            why = fits_zygote(kernel_cmd, env, zygote.python, zygote.env)
            if not why:
                cwd = str(kw.get("cwd") or os.getcwd())
                try:
                    kernel = await asyncio.to_thread(zygote.spawn, kernel_cmd, env, cwd)
                except Exception as exc:
                    self.log.warning("kernel zygote failed (%s): starting the kernel normally", exc)
                else:
                    provisioner.process = kernel  # type: ignore[assignment]
                    provisioner.pid = provisioner.pgid = kernel.pid  # its own session
                    provisioner.cwd = cwd
                    self._reconcile_connection_info(provisioner.connection_info)
                    self.log.info(
                        "kernel %s forked from the zygote (pid %d)", self.kernel_id, kernel.pid
                    )
                    return
            else:
                self.log.info("kernel not forked from the zygote: %s", why)
        await super()._async_launch_kernel(kernel_cmd, **kw)


def _jupyter_server_extension_points() -> list[dict[str, str]]:
    return [{"module": EXTENSION}]


def _load_jupyter_server_extension(serverapp: Any) -> None:
    """Start the zygote and switch the kernel manager's class to ours."""
    manager = getattr(serverapp, "kernel_manager", None)
    if manager is None or not hasattr(manager, "kernel_manager_class"):
        serverapp.log.warning("kernel zygote: no kernel manager to configure")
        return
    inherited = os.environ.pop(INHERITED_ENV, "")  # kernels are not to see it
    how = "started"
    try:
        if inherited:
            try:
                zygote, how = Zygote.inherited(inherited), "forked with the server"
            except (OSError, ValueError) as exc:
                serverapp.log.warning("kernel zygote %r unusable (%s)", inherited, exc)
                zygote = Zygote.start()
        else:
            zygote = Zygote.start()
    except OSError as exc:
        serverapp.log.warning("kernel zygote not started (%s): kernels start normally", exc)
        return
    _zygote[:] = [zygote]
    manager.kernel_manager_class = MANAGER
    serverapp.log.info("kernel zygote %s (pid %d)", how, zygote.process.pid)
