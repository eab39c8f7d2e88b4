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
from collections.abc import Iterator, Mapping
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
#: seconds a fork-server may take to preload before it is killed and exec is used
PRELOAD_TIMEOUT_ENV = "LABFLEET_FORKSERVER_PRELOAD_TIMEOUT"
DEFAULT_PRELOAD_TIMEOUT = 120.0
#: touched by ``labfleet envs install`` in an environment's prefix: a new content means
#: "the packages changed", so the next launch uses a fresh fork-server (see ``generation``)
GENERATION_FILE = ".labfleet-generation"
_default_log = logging.getLogger("labfleet.spawn.forkserver")


class ForkServerError(Exception):
    """The fork-server could not launch this spec; the caller uses exec instead."""


class NotReady(ForkServerError):
    """Still importing (or restarting): not a failure, just not warm yet."""


def environment_bin(argv0: str) -> Path:
    """The ``bin`` directory of the Python environment that owns the server command."""
    return Path(argv0).parent


Signature = tuple[tuple[str, str], ...]


def generation(bin_dir: Path) -> str:
    """The content of the environment's generation stamp ("" when it has none)."""
    try:
        return (bin_dir.parent / GENERATION_FILE).read_text().strip()[:200]
    except OSError:
        return ""


def preload_timeout_from_env(environ: Mapping[str, str] | None = None) -> float:
    env = os.environ if environ is None else environ
    try:
        value = float(env.get(PRELOAD_TIMEOUT_ENV, "") or DEFAULT_PRELOAD_TIMEOUT)
    except ValueError:
        return DEFAULT_PRELOAD_TIMEOUT
    return value if value > 0 else DEFAULT_PRELOAD_TIMEOUT


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
    #: a fork-server still preloading after this long is hung (an import that never
    #: returns): it is killed, launches use exec, and a new one is tried after retry_after
    preload_timeout: float = DEFAULT_PRELOAD_TIMEOUT
    #: a warm fork-server that misses ``ping_strikes`` pings in a row (each allowed this
    #: long: generous, a loaded 2-core machine answers slowly) is hung and replaced
    ping_timeout: float = 5.0
    ping_strikes: int = 2
    missed_pings: int = 0
    generation: str = ""
    #: learn the server's lazy imports from a throwaway server first (warmer, slower start)
    rehearse: bool = True
    runtime_dir: Path | None = None
    proc: subprocess.Popen[bytes] | None = None
    hello: dict[str, Any] | None = None
    failed_at: float | None = None
    started_at: float | None = None
    #: set when a newer generation replaced it: it starts nothing again
    retired: bool = False
    lock: threading.Lock = field(default_factory=threading.Lock)
    #: spawn requests on the wire (retiring waits for none), guarded by ``idle``
    in_flight: int = 0
    idle: threading.Condition = field(default_factory=threading.Condition)

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
            # learning lazy imports is optional: give up on it well before the whole preload
            "--rehearse-timeout",
            str(max(1.0, self.preload_timeout / 2)),
            *([] if self.rehearse else ["--no-rehearse"]),
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
        self.missed_pings = 0
        self.started_at = time.monotonic()
        self.log.info("fork-server for %s starting (pid %s)", self.bin_dir, self.proc.pid)

    def stop(self, kill: bool = False) -> None:
        if self.proc is not None and self.proc.poll() is None:
            if kill:  # hung: SIGTERM may never be handled
                self.proc.kill()
            else:
                self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
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
        if self.retired:
            raise ForkServerError("fork-server was retired (its environment changed)")
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
                self._give_up_if_hung()
                raise NotReady("fork-server is still preloading")
            self.hello = self._hello()
            if self.hello.get("rehearsal_error"):
                self.log.warning(
                    "fork-server for %s: %s (servers still start, a little slower)",
                    self.bin_dir,
                    self.hello["rehearsal_error"],
                )
            self.log.info(
                "fork-server for %s is warm (pid %s, preloaded %s and %s more modules in %ss)",
                self.bin_dir,
                self.hello["pid"],
                ", ".join(self.hello["preloaded"]),
                self.hello.get("learned", 0),
                self.hello["preload_seconds"],
            )
        return self.hello

    def _give_up_if_hung(self) -> None:
        """Kill a fork-server whose preload outlived ``preload_timeout`` (a hung import)."""
        if self.started_at is None or time.monotonic() - self.started_at < self.preload_timeout:
            return
        pid = self.proc.pid if self.proc else None
        tail = self._log_tail()
        self.stop(kill=True)
        self.failed_at = time.monotonic()
        self.log.warning(
            "fork-server for %s (pid %s) still preloading after %.0fs: killed it (a hung "
            "import? set %s to change the limit); servers start with exec, a new fork-server "
            "is tried in %.0fs. Its log: %s",
            self.bin_dir,
            pid,
            self.preload_timeout,
            PRELOAD_TIMEOUT_ENV,
            self.retry_after,
            tail or "no output",
        )
        raise ForkServerError(f"fork-server preload timed out after {self.preload_timeout:.0f}s")

    def check_health(self) -> str | None:
        """Ping a warm fork-server; kill a dead or hung one. What was wrong, or None.

        Called by the launcher's watchdog every few seconds, so a fork-server
        that died or stopped answering is replaced before the next spawn needs it.
        """
        with self.lock:
            if self.proc is None:
                return None
            code = self.proc.poll()
            if code is not None:
                was_warm = self.hello is not None
                self.stop()
                self.failed_at = None if was_warm else time.monotonic()
                return f"fork-server for {self.bin_dir} exited with {code}"
            if self.hello is None:
                try:
                    self._give_up_if_hung()
                except ForkServerError as exc:
                    return str(exc)
                return None
            try:
                self._ping()
            except (OSError, ValueError) as exc:
                self.missed_pings += 1
                if self.missed_pings < self.ping_strikes:
                    self.log.info("fork-server for %s missed a ping: %r", self.bin_dir, exc)
                    return None
                pid = self.proc.pid
                self.stop(kill=True)
                return (
                    f"fork-server for {self.bin_dir} (pid {pid}) did not answer "
                    f"{self.missed_pings} pings in a row: {exc!r}"
                )
            self.missed_pings = 0
            return None

    def _ping(self) -> None:
        with self._connect(self.ping_timeout) as sock:
            sock.sendall(OP_HELLO)
            json.loads(recv_frame(sock))

    # --- requests ---------------------------------------------------------------------
    def _connect(self, timeout: float | None = None) -> socket.socket:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(timeout or self.request_timeout)
        try:
            sock.connect(str(self.socket_path))
        except OSError:
            sock.close()
            raise
        return sock

    @contextlib.contextmanager
    def _request(self) -> Iterator[None]:
        with self.idle:
            self.in_flight += 1
        try:
            yield
        finally:
            with self.idle:
                self.in_flight -= 1
                self.idle.notify_all()

    def stop_when_idle(self, wait: float = 60.0) -> None:
        """Stop once no spawn request is on the wire (or after ``wait`` seconds)."""
        with self.idle:
            self.idle.wait_for(lambda: self.in_flight == 0, timeout=wait)
        with self.lock:
            self.stop()

    def _hello(self) -> dict[str, Any]:
        try:
            with self._connect() as sock:
                sock.sendall(OP_HELLO)
                hello: dict[str, Any] = json.loads(recv_frame(sock))
        except (OSError, ValueError) as exc:
            raise ForkServerError(f"fork-server did not answer hello: {exc}") from exc
        return hello

    def wait_ready(self) -> dict[str, Any]:
        """Like :meth:`ensure_ready`, waiting up to ``warm_wait`` for a cold one (and never
        past its ``preload_timeout``: ``ensure_ready`` gives up on a hung one)."""
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
            "kernel_zygote": spec.kernel_zygote,
        }
        spec.log_path.parent.mkdir(parents=True, exist_ok=True)
        try:
            with self._request(), self._connect() as sock:
                sock.sendall(OP_SPAWN)
                # the readiness pipe rides on the frame's first bytes (SCM_RIGHTS): only the
                # forked child reads the frame, so only the child (the server) holds it
                send_frame(sock, json.dumps(request).encode(), spec.ready_fd)
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
        preload_timeout: float | None = None,
        rehearse: bool = True,
        ping_timeout: float = 5.0,
    ):
        self.log = log or _default_log
        self.warm_wait = warm_wait
        self.preload_timeout = preload_timeout or preload_timeout_from_env()
        self.rehearse = rehearse
        self.ping_timeout = ping_timeout
        self.fallback = fallback or ExecLauncher()
        self.helpers: dict[tuple[Path, Signature, str], Helper] = {}
        self.lock = threading.Lock()
        self.max_helpers = 4
        #: how each launch went, newest last (for operators and tests)
        self.history: list[tuple[str, str]] = []
        self._watchdog: threading.Thread | None = None
        self._closing = threading.Event()

    def helper(self, bin_dir: Path, import_env: Signature) -> Helper:
        """The fork-server for this environment, its import-time variables and its
        generation stamp; one of an older generation is retired (stopped when idle)."""
        key = (bin_dir, import_env, generation(bin_dir))
        with self.lock:
            if key not in self.helpers:
                stale = [k for k in self.helpers if k[:2] == key[:2]]
                for old in stale:
                    self._retire(self.helpers.pop(old), "its environment changed")
                if len(self.helpers) >= self.max_helpers:
                    raise ForkServerError(f"already {self.max_helpers} fork-servers running")
                self.helpers[key] = Helper(
                    bin_dir,
                    import_env,
                    self.log,
                    warm_wait=self.warm_wait,
                    preload_timeout=self.preload_timeout,
                    generation=key[2],
                    rehearse=self.rehearse,
                    ping_timeout=self.ping_timeout,
                )
            return self.helpers[key]

    def _retire(self, helper: Helper, why: str) -> None:
        """Stop a fork-server no launch will use again, once its current request is done.

        Servers it forked live on (their own sessions); only the preloaded parent goes.
        """

        helper.retired = True
        self.log.info("retiring fork-server for %s: %s", helper.bin_dir, why)
        retire = threading.Thread(target=helper.stop_when_idle, name="forkserver-retire")
        retire.daemon = True
        retire.start()

    def check_health(self) -> list[str]:
        """Ping every fork-server; dead or hung ones are killed and warmed again at once."""
        problems: list[str] = []
        with self.lock:
            helpers = list(self.helpers.values())
        for helper in helpers:
            problem = helper.check_health()
            if problem is None:
                continue
            problems.append(problem)
            self.log.warning("%s; replacing it (launches use exec until it is warm)", problem)
            with helper.lock, contextlib.suppress(ForkServerError):
                if helper.failed_at is None:  # it was serving: warm a new one now
                    helper.start()
        return problems

    def start_watchdog(self, every: float = 5.0) -> None:
        """Check the fork-servers' health every ``every`` seconds in a daemon thread."""
        if self._watchdog is not None:
            return

        def watch() -> None:
            while not self._closing.wait(every):
                try:
                    self.check_health()
                except Exception:  # the watchdog must outlive any one bad check
                    self.log.exception("fork-server health check failed")

        self._watchdog = threading.Thread(target=watch, name="forkserver-watchdog", daemon=True)
        self._watchdog.start()

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
        self._closing.set()
        for helper in list(self.helpers.values()):
            helper.retired = True  # launches still waiting for it use exec
            with helper.lock:
                helper.stop()


_launchers: dict[str, Launcher] = {}


def launcher_for(kind: str, log: logging.Logger | None = None) -> Launcher:
    """The process-wide launcher of a kind (``exec`` or ``forkserver``)."""
    if kind not in _launchers:
        if kind == "forkserver":
            launcher = ForkServerLauncher(log)
            launcher.prestart(default_singleuser().parent)  # the env users' servers run from
            launcher.start_watchdog()
            _launchers[kind] = launcher
        elif kind == "exec":
            _launchers[kind] = ExecLauncher()
        else:
            raise ValueError(f"unknown launcher {kind!r}: expected 'exec' or 'forkserver'")
    return _launchers[kind]
