"""The fork-server process: the server stack imported once, one fork per user's server.

    python -s -m labfleet.spawn.forkserver_main --socket PATH --parent PID [--preload MOD,...]

Started by the hub (``spawn.forkserver.ForkServerLauncher``), one per Python
environment, with a minimal environment (no hub secrets: every byte of this
process is inherited by every user's server). It imports jupyter_server,
JupyterHub's single-user extension and the environment's enabled server
extensions — the 3+ CPU-seconds a plain exec pays per user — then listens on
a Unix socket that only its own account can reach.

Protocol (one connection per request):

* ``H`` → the server answers a JSON frame describing itself (hello).
* ``S`` → the server forks at once and never reads the request itself: the
  *child* reads the launch spec (so one user's token never sits in the
  memory that the next user's server inherits), applies it exactly like
  ``ExecLauncher`` (new session, pre-exec hooks as root, groups/gid/uid,
  chdir, stdio to the log, environment replaced), answers ``{"pid": N}``,
  waits for the hub's ``G`` (go) and only then runs the console script's
  ``main`` in-process with the spec's argv. Without ``G`` it exits, so a hub
  that gave up and fell back to exec never gets a second server.

The parent holds no threads and no event loop when it forks; it ignores
SIGCHLD so finished servers never linger as zombies, and exits when the hub
(its parent) is gone. Servers live on: they are in their own sessions.
"""

from __future__ import annotations

import argparse
import atexit
import contextlib
import ctypes
import gc
import importlib
import importlib.util
import json
import os
import select
import shutil
import signal
import site
import socket
import struct
import sys
import threading
import time
import traceback
from pathlib import Path
from typing import Any, NoReturn

from labfleet.spawn.kernel_zygote_main import PRELOAD as KERNEL_PRELOAD
from labfleet.spawn.server_ready import READY_FD_ENV

#: the server stack every user's server imports
PRELOAD = ("jupyter_server.serverapp", "jupyterhub.singleuser")
#: imported too when present, never fatal: the pre-exec hooks' modules, and what a kernel
#: zygote forked beside a server needs (``kernel_zygote_main.PRELOAD``: ipykernel, IPython),
#: so that zygote and its kernels share these pages with us instead of importing their own
SOFT_PRELOAD = (
    "labfleet.spawn.hookwire",
    "labfleet.spawn.limits",
    *KERNEL_PRELOAD,  # (kernel_zygote_main itself is imported above, for this list)
)
#: variables that preloaded modules read at import time: a child whose value differs
#: from the fork-server's cannot use the preloaded copy (the hub falls back to exec)
IMPORT_TIME_ENV = (
    "JUPYTERHUB_SINGLEUSER_APP",
    "JUPYTERHUB_SINGLEUSER_EXTENSION",
    "JUPYTERHUB_XSRF_ANONYMOUS_ID_HEADERS",
    "PYTHONPATH",
    "PYTHONHOME",
    "PYTHONSAFEPATH",
    "PYTHONPLATLIBDIR",
    "PYTHONOPTIMIZE",
    "PYTHONWARNINGS",
    "PYTHONDEVMODE",
)
#: modules whose top level reads the environment: executed again in each child
REIMPORT_IN_CHILD = ("jupyterhub.singleuser",)
OP_HELLO, OP_SPAWN, GO = b"H", b"S", b"G"
#: where a server finds the hub's readiness pipe (``spawn.server_ready``)
READY_FD_NUMBER = 3
#: the server loop's name in ps/top (its children keep its command line, not its name)
PROCESS_NAME = "fork-server"
CHILD_TIMEOUT = 15.0
MAX_FRAME = 16 * 1024 * 1024


# --- framing (shared with the hub side) ------------------------------------------
def send_frame(sock: socket.socket, payload: bytes, fd: int | None = None) -> None:
    """A length-prefixed frame; ``fd`` goes along with its 4-byte header (SCM_RIGHTS)."""
    head = struct.pack("!I", len(payload))
    if fd is not None:
        sent = socket.send_fds(sock, [head], [fd])
        head = head[sent:]
    sock.sendall(head + payload)


def recv_exact(sock: socket.socket, size: int) -> bytes:
    chunks: list[bytes] = []
    while size:
        chunk = sock.recv(min(size, 1 << 20))
        if not chunk:
            raise ConnectionError("peer closed the connection")
        chunks.append(chunk)
        size -= len(chunk)
    return b"".join(chunks)


def recv_frame(sock: socket.socket) -> bytes:
    (size,) = struct.unpack("!I", recv_exact(sock, 4))
    if size > MAX_FRAME:
        raise ValueError(f"frame of {size} bytes is too large")
    return recv_exact(sock, size)


def recv_frame_fd(sock: socket.socket) -> tuple[bytes, int | None]:
    """A frame from :func:`send_frame` and the fd that came with it, if any."""
    head, fds, _flags, _addr = socket.recv_fds(sock, 4, 1)
    if not head:
        raise ConnectionError("peer closed the connection")
    head += recv_exact(sock, 4 - len(head))
    (size,) = struct.unpack("!I", head)
    if size > MAX_FRAME:
        for extra in fds:
            os.close(extra)
        raise ValueError(f"frame of {size} bytes is too large")
    return recv_exact(sock, size), (fds[0] if fds else None)


# --- preloading --------------------------------------------------------------------
def enabled_server_extensions(prefix: Path) -> list[str]:
    """Server extensions enabled in this environment's ``jupyter_server_config.d``."""
    found: list[str] = []
    for path in sorted((prefix / "etc" / "jupyter" / "jupyter_server_config.d").glob("*.json")):
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        extensions = data.get("ServerApp", {}).get("jpserver_extensions", {})
        found += [name for name, enabled in extensions.items() if enabled]
    return found


def preload(extra: list[str]) -> list[str]:
    """Import the server stack; extra modules first so a typo fails fast."""
    for name in extra:
        if importlib.util.find_spec(name) is None:
            raise ModuleNotFoundError(f"preload module {name!r} not found")
    loaded: list[str] = []
    for name in [*extra, *PRELOAD]:
        importlib.import_module(name)
        loaded.append(name)
    for name in SOFT_PRELOAD:
        with contextlib.suppress(Exception):
            importlib.import_module(name)
    for name in enabled_server_extensions(Path(sys.prefix)):
        try:
            module = importlib.import_module(name)
            points = getattr(module, "_jupyter_server_extension_points", None)
            if points:
                points()  # imports the extension's app classes
            loaded.append(name)
        except Exception as exc:
            print(f"fork-server: not preloading {name}: {exc}", file=sys.stderr)
    return loaded


class RehearsalTimeout(Exception):
    """The throwaway server did not finish initializing in time (it was killed)."""


def rehearse(timeout: float = 60.0) -> list[str]:
    """Modules a server imports while it initializes, learned from a throwaway child.

    A forked child initializes a jupyter_server (with this environment's
    extensions) in a temporary home, reports which modules that imported and
    exits; the parent then imports the same ones. Environment-specific lazy
    imports (extension managers, handlers, IPython bits) are thus paid once.
    """
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the rehearsal: never returns
        os.close(read_end)
        code = 1
        try:
            code = _rehearsal_child(write_end)
        finally:
            os._exit(code)
    os.close(write_end)
    chunks: list[bytes] = []
    deadline = time.monotonic() + timeout
    finished = False
    try:
        while not finished:
            left = deadline - time.monotonic()
            # a bounded wait: a read would block for as long as a hung import hangs
            if left <= 0 or not select.select([read_end], [], [], left)[0]:
                break
            chunk = os.read(read_end, 65536)
            finished = not chunk
            chunks.append(chunk)
    finally:
        os.close(read_end)
        if not finished:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
    if not finished:
        raise RehearsalTimeout(f"rehearsal did not finish in {timeout:.0f}s (a hung import?)")
    return [name for name in b"".join(chunks).decode().split() if name]


def _rehearsal_child(write_end: int) -> int:
    import tempfile

    devnull = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(devnull, fd)
    with tempfile.TemporaryDirectory(prefix="labfleet-rehearsal-") as home:
        os.environ.update(
            {
                "HOME": home,
                "JUPYTER_RUNTIME_DIR": home,
                "JUPYTER_CONFIG_DIR": home,
                "JUPYTER_DATA_DIR": home,
            }
        )
        before = set(sys.modules)
        from jupyter_server.serverapp import ServerApp

        argv = [
            f"--ServerApp.root_dir={home}",
            "--ServerApp.open_browser=False",
            "--ServerApp.port=0",
            "--ServerApp.ip=127.0.0.1",
        ]
        if os.getuid() == 0:
            argv.append("--allow-root")
        app = ServerApp.instance()
        app.initialize(argv)
        learned = sorted(set(sys.modules) - before)
    payload = "\n".join(learned).encode()
    while payload:
        payload = payload[os.write(write_end, payload) :]
    return 0


def import_learned(names: list[str]) -> list[str]:
    imported: list[str] = []
    for name in names:
        if name.startswith("__") or name in sys.modules:
            continue
        try:
            importlib.import_module(name)
            imported.append(name)
        except Exception:  # noqa: S112 - a module that needs its app's context: skip
            continue
    return imported


# --- the child ---------------------------------------------------------------------
class SetupError(Exception):
    """The spec cannot be applied here; reported to the hub, which falls back to exec."""


def _check_script(path: str) -> None:
    """Only this environment's Python console scripts run in-process, and only if exec could.

    Runs after the privilege drop: the user must be able to execute this
    interpreter (every directory on the way included) and read the script,
    exactly as an exec of the script would require.
    """
    if not os.access(sys.executable, os.X_OK):
        raise SetupError(f"uid {os.getuid()} cannot execute {sys.executable}")
    try:
        with open(path, "rb") as handle:
            first = handle.readline(512)
    except OSError as exc:
        raise SetupError(f"cannot read {path}: {exc}") from exc
    if not first.startswith(b"#!"):
        raise SetupError(f"{path} is not a script")
    interpreter = first[2:].strip().split(b" ")[0].decode(errors="replace")
    if Path(interpreter).parent != Path(sys.executable).parent:
        raise SetupError(f"{path} runs {interpreter}, not this environment's Python")


def _apply_identity(spec: dict[str, Any], hooks: list[Any]) -> None:
    """Exactly ExecLauncher's pre-exec steps: hooks as root, then drop, then chdir."""
    for hook in hooks:
        hook()
    if spec["gid"] is not None:
        os.setgroups(list(spec["groups"]))
        os.setresgid(spec["gid"], spec["gid"], spec["gid"])
    if spec["uid"] is not None:
        os.setresuid(spec["uid"], spec["uid"], spec["uid"])
    os.chdir(spec["cwd"])


def _set_process_name(argv0: str) -> None:
    """``comm`` as exec would set it (what ps/top show), best effort."""
    with contextlib.suppress(Exception):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(15, os.path.basename(argv0).encode()[:15], 0, 0, 0)  # PR_SET_NAME


def _become_process(spec: dict[str, Any], log_fd: int, ready_fd: int | None = None) -> None:
    """stdio, fds, signals, environment, argv and sys.path of a freshly exec'd server.

    The readiness pipe (if the hub sent one) becomes fd 3, as an exec with
    ``pass_fds`` would keep it, and its number goes into the environment.
    """
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    os.dup2(log_fd, 1)
    os.dup2(log_fd, 2)
    first_closed = 3
    if ready_fd is not None:
        if ready_fd != READY_FD_NUMBER:
            os.dup2(ready_fd, READY_FD_NUMBER)
        spec["env"] = {**spec["env"], READY_FD_ENV: str(READY_FD_NUMBER)}
        first_closed = READY_FD_NUMBER + 1
    os.closerange(first_closed, os.sysconf("SC_OPEN_MAX") if hasattr(os, "sysconf") else 1024)
    sys.stdin = open(0, closefd=False)  # noqa: SIM115 - process-lifetime stdio
    sys.stdout = open(1, "w", buffering=1, closefd=False, errors="backslashreplace")  # noqa: SIM115
    sys.stderr = open(2, "w", buffering=1, closefd=False, errors="backslashreplace")  # noqa: SIM115
    for sig in (signal.SIGCHLD, signal.SIGTERM, signal.SIGHUP, signal.SIGUSR1, signal.SIGUSR2):
        signal.signal(sig, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    env: dict[str, str] = spec["env"]
    os.environ.clear()
    os.environ.update(env)
    argv: list[str] = spec["argv"]
    sys.argv = list(argv)
    sys.path.insert(0, str(Path(argv[0]).parent))
    _add_user_site(env)
    for name in REIMPORT_IN_CHILD:
        sys.modules.pop(name, None)
    _set_process_name(argv[0])


def _add_user_site(env: dict[str, str]) -> None:
    """The user's ``~/.local`` site-packages, as the interpreter would have added it."""
    if env.get("PYTHONNOUSERSITE"):
        return
    base = env.get("PYTHONUSERBASE") or os.path.join(env.get("HOME", "~"), ".local")
    version = f"python{sys.version_info.major}.{sys.version_info.minor}"
    user_site = os.path.join(base, "lib", version, "site-packages")
    site.ENABLE_USER_SITE = True
    site.USER_BASE, site.USER_SITE = base, user_site
    if os.path.isdir(user_site):
        site.addsitedir(user_site)


def _exit_code(exc: SystemExit) -> int:
    if exc.code is None:
        return 0
    if isinstance(exc.code, int):
        return exc.code
    print(exc.code, file=sys.stderr)
    return 1


def _run_script(path: str) -> int:
    import runpy

    try:
        runpy.run_path(path, run_name="__main__")
    except SystemExit as exc:
        return _exit_code(exc)
    return 0


def _fork_kernel_zygote(script: str) -> None:
    """The server's kernel zygote, forked from this preloaded image (``kernel_zygote_main``).

    On any failure the server's extension starts a zygote of its own, as under exec.
    """
    try:
        from labfleet.spawn.kernel_zygote_main import fork_beside_server

        fork_beside_server(str(Path(script).parent))
    except Exception as exc:
        print(f"fork-server: kernel zygote not forked ({exc}); the server starts one", flush=True)


def run_child(conn: socket.socket, listener: socket.socket) -> NoReturn:
    """In the forked child: read the spec, become the server, run it; never returns."""
    code = 1
    try:
        listener.close()
        os.setsid()
        conn.settimeout(CHILD_TIMEOUT)
        try:
            from labfleet.spawn.hookwire import decode_hooks

            frame, ready_fd = recv_frame_fd(conn)
            spec = json.loads(frame)
            hooks = decode_hooks(bytes.fromhex(spec["hooks"]))
            log_fd = os.open(spec["log_path"], os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
            _apply_identity(spec, hooks)
            _check_script(spec["argv"][0])  # as the user: exec would need to read it too
        except Exception as exc:
            message = f"{type(exc).__name__}: {exc}"
            with contextlib.suppress(OSError):
                send_frame(conn, json.dumps({"error": message}).encode())
            os._exit(1)
        try:
            send_frame(conn, json.dumps({"pid": os.getpid()}).encode())
            go = recv_exact(conn, 1)
        except OSError:
            go = b""
        if go != GO:
            os._exit(1)  # the hub gave up on us (and may have used exec): never run twice
        conn.close()
        _become_process(spec, log_fd, ready_fd)
        if spec.get("kernel_zygote"):
            _fork_kernel_zygote(spec["argv"][0])
        code = _run_script(spec["argv"][0])
    except BaseException:
        with contextlib.suppress(Exception):
            traceback.print_exc()
        code = 1
    finally:
        with contextlib.suppress(Exception):
            threading._shutdown()  # type: ignore[attr-defined]  # join non-daemon threads
        with contextlib.suppress(Exception):
            atexit._run_exitfuncs()
        with contextlib.suppress(Exception):
            sys.stdout.flush()
            sys.stderr.flush()
        os._exit(code)


# --- the server loop ---------------------------------------------------------------
def _peer_is_us(conn: socket.socket) -> bool:
    creds = conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    _pid, uid, _gid = struct.unpack("3i", creds)
    return bool(uid == os.getuid())


def serve(listener: socket.socket, parent: int, hello: dict[str, Any]) -> int:
    listener.settimeout(1.0)
    while os.getppid() == parent:
        try:
            conn, _ = listener.accept()
        except TimeoutError:
            continue
        try:
            conn.settimeout(5.0)
            if not _peer_is_us(conn):
                continue
            op = recv_exact(conn, 1)
            if op == OP_HELLO:
                send_frame(conn, json.dumps(hello).encode())
            elif op == OP_SPAWN:
                child = os.fork()
                if child == 0:
                    run_child(conn, listener)
        except OSError as exc:
            print(f"fork-server: request failed: {exc}", file=sys.stderr, flush=True)
        finally:
            conn.close()
    return 0


def listen(path: Path) -> socket.socket:
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    old = os.umask(0o177)
    try:
        listener.bind(str(path) + ".tmp")
    finally:
        os.umask(old)
    listener.listen(128)
    # appear under the final name only when ready: "socket exists" means "warm"
    os.rename(str(path) + ".tmp", path)
    return listener


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="labfleet-forkserver")
    parser.add_argument("--socket", required=True, type=Path)
    parser.add_argument("--parent", required=True, type=int, help="exit when this pid is gone")
    parser.add_argument("--preload", default="", help="extra modules to import, comma-separated")
    parser.add_argument(
        "--no-rehearse",
        dest="rehearse",
        action="store_false",
        help="skip learning the server's lazy imports from a throwaway child",
    )
    parser.add_argument(
        "--rehearse-timeout",
        type=float,
        default=60.0,
        help="seconds the throwaway child may take; then it is killed and nothing is learned",
    )
    args = parser.parse_args(argv)
    if sys.path and sys.path[0] in ("", os.getcwd()):
        sys.path.pop(0)  # -m put the hub's cwd there; a child gets its script's directory
    started = time.monotonic()
    try:
        loaded = preload([m for m in args.preload.split(",") if m])
    except Exception as exc:
        print(f"fork-server: preloading failed: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 3
    learned: list[str] = []
    rehearsal_error = ""
    if args.rehearse:
        try:
            learned = import_learned(rehearse(args.rehearse_timeout))
        except Exception as exc:
            rehearsal_error = f"rehearsal failed: {exc}"
            print(f"fork-server: {rehearsal_error}", file=sys.stderr)
    if threading.active_count() != 1:
        print("fork-server: preloading started threads; refusing to fork", file=sys.stderr)
        return 4
    from labfleet.spawn.hookwire import WIRE_TAG

    hello = {
        "pid": os.getpid(),
        "python": sys.executable,
        "wire": WIRE_TAG,
        "preloaded": loaded,
        "learned": len(learned),
        "rehearsal_error": rehearsal_error,
        "import_env": {key: os.environ.get(key) for key in IMPORT_TIME_ENV},
        "preload_seconds": round(time.monotonic() - started, 3),
    }
    gc.collect()
    gc.freeze()  # keep the preloaded heap shared (copy-on-write) with every child
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # children are reaped by the kernel
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the hub decides when we go
    # what ps/top show; each child renames itself (a server after its script, a zygote and
    # its kernels after what they are), so "fork-server" is only ever the server loop itself
    _set_process_name(PROCESS_NAME)
    listener = listen(args.socket)
    try:
        return serve(listener, args.parent, hello)
    finally:
        listener.close()
        with contextlib.suppress(OSError):
            args.socket.unlink()
        if args.socket.parent.name.startswith("labfleet-forkserver-"):
            shutil.rmtree(args.socket.parent, ignore_errors=True)  # the hub is gone


if __name__ == "__main__":
    sys.exit(main())
