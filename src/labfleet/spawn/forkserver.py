"""ForkServerLauncher: start users' servers by forking a warm, preloaded process.

A plain exec of ``jupyterhub-singleuser`` spends seconds of CPU importing
jupyter_server and its extensions, for every user, every time. The fork-server
(``spawn.forkserver_main``) pays that once per Python environment; each launch
is then a fork whose child applies the :class:`LaunchSpec` exactly as
:class:`ExecLauncher` would and runs the server's ``main`` in-process.

Policy, accounts and limits are untouched: the spawner builds the same spec.
The launcher never blocks the hub for long and never fails a spawn on its own
account — a cold, missing, dead or refusing fork-server means "use exec this
time" (with a warning for real failures), and a dead one is restarted later.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from labfleet.spawn.forkserver_main import (
    GO,
    IMPORT_TIME_ENV,
    OP_HELLO,
    OP_SPAWN,
    recv_frame,
    send_frame,
)
from labfleet.spawn.hookwire import WIRE_TAG, HookNotPortable, encode_hooks
from labfleet.spawn.launch import ExecLauncher, Launcher, LaunchSpec
from labfleet.spawn.server_env import default_singleuser

#: variables passed on from the hub (no secrets: its memory is every server's); the
#: import-time ones come from the servers' own environment instead (see ``signature``)
HELPER_ENV_KEEP = ("PATH", "LANG", "LC_ALL", "VIRTUAL_ENV", "CONDA_ROOT", "CONDA_DEFAULT_ENV")
#: the hub variables a server inherits by default (JupyterHub's ``Spawner.env_keep``)
DEFAULT_SERVER_ENV_KEEP = ("JUPYTERHUB_SINGLEUSER_APP",)
#: extra modules to preload, comma-separated (e.g. a site's own server extension)
PRELOAD_ENV = "LABFLEET_FORKSERVER_PRELOAD"
_default_log = logging.getLogger("labfleet.spawn.forkserver")


class ForkServerError(Exception):
    """The fork-server could not launch this spec; the caller uses exec instead."""


class NotReady(ForkServerError):
    """Still importing (or restarting): not a failure, just not warm yet."""


def environment_bin(argv0: str) -> Path:
    """The ``bin`` directory of the Python environment that owns the server command."""
    return Path(argv0).parent


Signature = tuple[tuple[str, str], ...]


def signature(env: Mapping[str, str]) -> Signature:
    """The import-time variables of a server's environment: one fork-server per value."""
    return tuple(sorted((key, env[key]) for key in IMPORT_TIME_ENV if key in env))


@dataclass
class Helper:
    """One fork-server process for one Python environment."""

    bin_dir: Path
    import_env: Signature
    log: logging.Logger
    retry_after: float = 60.0
    request_timeout: float = 15.0
    #: how long a launch waits for a cold fork-server before using exec instead (an exec
    #: pays the same imports, so waiting is rarely slower; JupyterHub's start_timeout rules)
    warm_wait: float = 90.0
    runtime_dir: Path | None = None
    proc: subprocess.Popen[bytes] | None = None
    hello: dict[str, Any] | None = None
    failed_at: float | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def python(self) -> Path:
        return self.bin_dir / "python"

    @property
    def socket_path(self) -> Path:
        assert self.runtime_dir is not None
        return self.runtime_dir / "forkserver.sock"

    @property
    def log_path(self) -> Path:
        assert self.runtime_dir is not None
        return self.runtime_dir / "forkserver.log"

    # --- lifecycle ----------------------------------------------------------------
    def start(self) -> None:
        """Start the process (non-blocking: it becomes ready when its socket appears)."""
        if not self.python.exists():
            raise ForkServerError(f"no Python at {self.python}")
        self.runtime_dir = Path(tempfile.mkdtemp(prefix="labfleet-forkserver-"))
        env = {k: v for k, v in os.environ.items() if k in HELPER_ENV_KEEP}
        env.update(self.import_env)
        argv = [
            str(self.python),
            "-s",
            "-m",
            "labfleet.spawn.forkserver_main",
            "--socket",
            str(self.socket_path),
            "--parent",
            str(os.getpid()),
            "--preload",
            os.environ.get(PRELOAD_ENV, ""),
        ]
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                argv,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self.runtime_dir,
                close_fds=True,
            )
        self.hello = None
        self.failed_at = None
        self.log.info("fork-server for %s starting (pid %s)", self.bin_dir, self.proc.pid)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(5)
        if self.runtime_dir is not None:
            shutil.rmtree(self.runtime_dir, ignore_errors=True)
        self.proc = None
        self.hello = None

    def _log_tail(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-1500:].strip()
        except (OSError, AssertionError):
            return ""

    def ensure_ready(self) -> dict[str, Any]:
        """The hello of a warm fork-server, or raise (starting one when needed)."""
        if self.proc is None:
            if self.failed_at is not None and time.monotonic() - self.failed_at < self.retry_after:
                raise ForkServerError("fork-server failed recently; not retrying yet")
            self.start()
            raise NotReady("fork-server is starting")
        code = self.proc.poll()
        if code is not None:
            tail = self._log_tail()
            was_warm = self.hello is not None
            self.stop()
            # died while serving: start a new one next time; failed to start: back off
            self.failed_at = None if was_warm else time.monotonic()
            raise ForkServerError(f"fork-server exited with {code}: {tail or 'no output'}")
        if self.hello is None:
            if not self.socket_path.exists():
                raise NotReady("fork-server is still preloading")
            self.hello = self._hello()
            self.log.info(
                "fork-server for %s is warm (pid %s, preloaded %s and %s more modules in %ss)",
                self.bin_dir,
                self.hello["pid"],
                ", ".join(self.hello["preloaded"]),
                self.hello.get("learned", 0),
                self.hello["preload_seconds"],
            )
        return self.hello

    # --- requests ---------------------------------------------------------------------
    def _connect(self) -> socket.socket:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.request_timeout)
        try:
            sock.connect(str(self.socket_path))
        except OSError:
            sock.close()
            raise
        return sock

    def _hello(self) -> dict[str, Any]:
        try:
            with self._connect() as sock:
                sock.sendall(OP_HELLO)
                hello: dict[str, Any] = json.loads(recv_frame(sock))
        except (OSError, ValueError) as exc:
            raise ForkServerError(f"fork-server did not answer hello: {exc}") from exc
        return hello

    def wait_ready(self) -> dict[str, Any]:
        """Like :meth:`ensure_ready`, waiting up to ``warm_wait`` for a cold one."""
        deadline = time.monotonic() + self.warm_wait
        while True:
            with self.lock:
                try:
                    return self.ensure_ready()
                except NotReady:
                    if time.monotonic() >= deadline:
                        raise
            time.sleep(0.05)

    def spawn(self, spec: LaunchSpec) -> int:
        hello = self.wait_ready()
        check_compatible(spec, hello)
        try:
            hooks = encode_hooks(spec.pre_exec).hex()
        except HookNotPortable as exc:
            raise ForkServerError(f"pre-exec hook cannot be sent: {exc}") from exc
        request = {
            "argv": spec.argv,
            "env": spec.env,
            "cwd": str(spec.cwd),
            "log_path": str(spec.log_path),
            "uid": spec.uid,
            "gid": spec.gid,
            "groups": list(spec.groups),
            "hooks": hooks,
        }
        spec.log_path.parent.mkdir(parents=True, exist_ok=True)
        try:
            with self._connect() as sock:
                sock.sendall(OP_SPAWN)
                send_frame(sock, json.dumps(request).encode())
                answer = json.loads(recv_frame(sock))
                if "pid" not in answer:
                    raise ForkServerError(f"fork-server refused: {answer.get('error')}")
                sock.sendall(GO)  # without it the child exits: no double launch on errors
                return int(answer["pid"])
        except (OSError, ValueError) as exc:
            if isinstance(exc, TimeoutError):  # alive but stuck: replace it next time
                with self.lock:
                    self.stop()
            raise ForkServerError(f"fork-server request failed: {exc!r}") from exc


def check_compatible(spec: LaunchSpec, hello: dict[str, Any]) -> None:
    """Refuse specs the preloaded interpreter cannot honour (the caller execs them)."""
    if hello.get("wire") != WIRE_TAG:
        raise ForkServerError(f"fork-server runs {hello.get('wire')}, the hub {WIRE_TAG}")
    preloaded_env: dict[str, str | None] = hello.get("import_env", {})
    for key in IMPORT_TIME_ENV:
        if spec.env.get(key) != preloaded_env.get(key):
            raise ForkServerError(f"{key} differs from the fork-server's (read at import time)")


class ForkServerLauncher:
    """:class:`Launcher` that forks from a warm fork-server, falling back to exec."""

    def __init__(
        self,
        log: logging.Logger | None = None,
        fallback: Launcher | None = None,
        warm_wait: float = 90.0,
    ):
        self.log = log or _default_log
        self.warm_wait = warm_wait
        self.fallback = fallback or ExecLauncher()
        self.helpers: dict[tuple[Path, Signature], Helper] = {}
        self.lock = threading.Lock()
        self.max_helpers = 4
        #: how each launch went, newest last (for operators and tests)
        self.history: list[tuple[str, str]] = []

    def helper(self, bin_dir: Path, import_env: Signature) -> Helper:
        key = (bin_dir, import_env)
        with self.lock:
            if key not in self.helpers:
                if len(self.helpers) >= self.max_helpers:
                    raise ForkServerError(f"already {self.max_helpers} fork-servers running")
                self.helpers[key] = Helper(bin_dir, import_env, self.log, warm_wait=self.warm_wait)
            return self.helpers[key]

    def prestart(self, bin_dir: Path | None = None) -> None:
        """Start warming a fork-server for the default server environment (the hub's own)."""
        env = {k: v for k, v in os.environ.items() if k in DEFAULT_SERVER_ENV_KEEP}
        with contextlib.suppress(ForkServerError):
            helper = self.helper(bin_dir or Path(sys.prefix) / "bin", signature(env))
            with helper.lock:
                helper.ensure_ready()

    def launch(self, spec: LaunchSpec) -> int:
        try:
            helper = self.helper(environment_bin(spec.argv[0]), signature(spec.env))
            pid = helper.spawn(spec)
        except NotReady as exc:
            self.log.info("%s; starting %s with exec this time", exc, spec.argv[0])
            self.history.append(("exec", str(exc)))
        except ForkServerError as exc:
            self.log.warning("fork-server failed (%s); starting %s with exec", exc, spec.argv[0])
            self.history.append(("exec", str(exc)))
        else:
            self.history.append(("forkserver", str(pid)))
            return pid
        return self.fallback.launch(spec)

    def close(self) -> None:
        for helper in self.helpers.values():
            helper.stop()


_launchers: dict[str, Launcher] = {}


def launcher_for(kind: str, log: logging.Logger | None = None) -> Launcher:
    """The process-wide launcher of a kind (``exec`` or ``forkserver``)."""
    if kind not in _launchers:
        if kind == "forkserver":
            launcher = ForkServerLauncher(log)
            launcher.prestart(default_singleuser().parent)  # the env users' servers run from
            _launchers[kind] = launcher
        elif kind == "exec":
            _launchers[kind] = ExecLauncher()
        else:
            raise ValueError(f"unknown launcher {kind!r}: expected 'exec' or 'forkserver'")
    return _launchers[kind]
