"""The kernel zygote: ipykernel imported once per server, one fork per kernel (issue 16).

    python -m labfleet.spawn.kernel_zygote_main --fd N --parent PID

Started by the member's server (``spawn.kernel_zygote``), so it already is the
member: same uid, cgroup, environment and home; it needs no privilege. It
imports ipykernel, IPython and jupyter_client's session code — about a second
of a fresh interpreter's start — but creates no zmq context, socket, thread or
event loop, so a forked child starts from a clean slate and builds its own.

Protocol over the inherited ``SOCK_SEQPACKET`` socket (one JSON message per
packet):

* zygote → server, once: ``{"ready": true, "pid": N}`` after the imports;
* server → zygote: ``{"argv": [...], "env": {...}, "cwd": "..."}``; the zygote
  forks and answers ``{"pid": N}`` with a pidfd of the child attached (the
  server can watch and signal it without pid-reuse races) or ``{"error": "..."}``;
* zygote → server, whenever a kernel exits: ``{"exit": pid, "status": code}``
  (negative: killed by that signal, like ``subprocess``).

The child makes a new session (JupyterLab's interrupt signals the kernel's
process group), asks for SIGKILL when the zygote dies, replaces its
environment, changes directory and runs ipykernel's ``launch_new_instance``
with the kernelspec's arguments. The zygote asks for SIGKILL when the server
dies and exits when the server closes the socket, so nothing outlives the
server. Stdlib only until :func:`preload`.

Under the fork-server the zygote is not a new interpreter: the fork-server has
imported these modules too (``SOFT_PRELOAD``), and its child, about to become
the member's server, forks the zygote from that same image first
(:func:`fork_beside_server`) and names it to the server's extension in
``LABFLEET_KERNEL_ZYGOTE``. Its pages stay shared, copy-on-write, with the
fork-server's, so a zygote costs an idle server ~1 MiB of its own instead of
~16 MiB, and each kernel forked from it shares them too.
"""

from __future__ import annotations

import argparse
import atexit
import contextlib
import ctypes
import gc
import json
import os
import signal
import socket
import sys
import traceback
from typing import Any, NoReturn

#: what a kernel imports before it serves; importing these makes no thread or zmq context
PRELOAD = (
    "ipykernel.kernelapp",
    "ipykernel.ipkernel",
    "ipykernel.zmqshell",
    "ipykernel.iostream",
    "ipykernel.comm",
    "IPython.core.interactiveshell",
    "IPython.core.completer",
    "jupyter_client.session",
    # imported while the kernel initialises (traitlets resolves them by name): the
    # debugger (debugpy, ~0.07 CPU-s), psutil for the local interfaces, the shell's
    # helpers and history database; ~0.1 of a kernel's 0.15 CPU-s to initialise
    "ipykernel.debugger",
    "jupyter_client.localinterfaces",
    "psutil",
    "IPython.core.debugger",
    "IPython.core.completerlib",
    "IPython.core.oinspect",
    "sqlite3",
    "pdb",
    "pydoc",
    "tornado.gen",
    "tornado.locks",
    "tornado.queues",
)
#: what those imports set in ``os.environ`` (debugpy, when ``ipykernel.debugger`` is
#: imported): a kernel importing them itself has it, so a forked one gets it set again
IMPORT_ENV_DEFAULTS = {"PYDEVD_USE_FRAME_EVAL": "NO"}
PR_SET_PDEATHSIG = 1
PR_SET_NAME = 15
MAX_PACKET = 1 << 20
#: a zygote forked beside the server, for the server's extension: ``"FD:PID"``
INHERITED_ENV = "LABFLEET_KERNEL_ZYGOTE"
#: what ps/top show for a zygote (forked beside its server it has the server's command line)
PROCESS_NAME = "kernel-zygote"
#: ... and for a kernel forked from it (it has the zygote's command line)
KERNEL_NAME = "ipykernel"


def die_with_parent(parent: int) -> None:
    """SIGKILL this process when its parent dies (and it may already have)."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    except (OSError, AttributeError):
        pass
    if os.getppid() != parent:
        os._exit(1)


def preload() -> None:
    """Import what a kernel needs, then freeze the heap so forks share it copy-on-write."""
    import importlib

    for name in PRELOAD:
        try:
            importlib.import_module(name)
        except Exception as exc:  # a missing optional piece costs the child an import, no more
            print(f"kernel zygote: not preloading {name}: {exc}", file=sys.stderr)
    gc.collect()
    gc.freeze()


def send(sock: socket.socket, message: dict[str, Any], fds: list[int] | None = None) -> None:
    data = json.dumps(message).encode()
    if fds:
        socket.send_fds(sock, [data], fds)
    else:
        sock.send(data)


def run_kernel(sock: socket.socket, wakeup: tuple[int, int], request: dict[str, Any]) -> NoReturn:
    """In the forked child: become the kernel the request describes; never returns."""
    code = 1
    try:
        sock.close()
        for fd in wakeup:
            os.close(fd)
        signal.set_wakeup_fd(-1)
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        signal.signal(signal.SIGINT, signal.default_int_handler)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)  # ignored dispositions survive a fork
        signal.signal(signal.SIGHUP, signal.SIG_DFL)
        os.setsid()
        _set_process_name(KERNEL_NAME)  # not the zygote's name, in ps/top
        die_with_parent(int(request["zygote"]))
        null = os.open(os.devnull, os.O_RDONLY)
        os.dup2(null, 0)
        os.close(null)
        os.environ.clear()
        os.environ.update({str(k): str(v) for k, v in request["env"].items()})
        for name, value in IMPORT_ENV_DEFAULTS.items():
            os.environ.setdefault(name, value)
        os.chdir(request["cwd"])
        sys.argv = [str(arg) for arg in request["argv"]]
        from ipykernel import kernelapp

        kernelapp.launch_new_instance()
        code = 0
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    except BaseException:
        traceback.print_exc()
    finally:
        # a forked child leaves by os._exit: run what a normal interpreter runs at exit
        # (IPython saves its history, the member's own atexit hooks)
        atexit._run_exitfuncs()
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(Exception):
                stream.flush()
    os._exit(code)


def exit_status(status: int) -> int:
    """``waitpid`` status as ``subprocess`` reports it (negative: the signal)."""
    if os.WIFSIGNALED(status):
        return -os.WTERMSIG(status)
    return os.WEXITSTATUS(status) if os.WIFEXITED(status) else 1


def reap(sock: socket.socket) -> None:
    """Collect finished kernels and tell the server their status."""
    while True:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return
        try:
            send(sock, {"exit": pid, "status": exit_status(status)})
        except OSError:
            return


def fork_kernel(sock: socket.socket, wakeup: tuple[int, int], request: dict[str, Any]) -> None:
    request["zygote"] = os.getpid()
    pid = os.fork()
    if pid == 0:
        run_kernel(sock, wakeup, request)
    pidfd = os.pidfd_open(pid)
    try:
        send(sock, {"pid": pid}, [pidfd])
    finally:
        os.close(pidfd)


def serve(sock: socket.socket) -> None:
    """Answer requests until the server closes the socket."""
    read_end, write_end = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
    signal.set_wakeup_fd(write_end)
    signal.signal(signal.SIGCHLD, lambda *_: None)
    # a ^C on the server's terminal, or the spawner's SIGTERM to the server's session, is not
    # ours: the server shuts its kernels down politely first, then its exit kills us (pdeathsig)
    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, signal.SIG_IGN)
    import select

    while True:
        try:
            readable, _, _ = select.select([sock.fileno(), read_end], [], [])
        except InterruptedError:
            continue
        if read_end in readable:
            with contextlib.suppress(BlockingIOError):
                os.read(read_end, 4096)
            reap(sock)
        if sock.fileno() in readable:
            data = sock.recv(MAX_PACKET)
            if not data:
                return
            try:
                request = json.loads(data)
                fork_kernel(sock, (read_end, write_end), request)
            except Exception as exc:
                send(sock, {"error": f"{type(exc).__name__}: {exc}"})


def _set_process_name(name: str) -> None:
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_NAME, name.encode()[:15], 0, 0, 0)


def fork_beside_server(script_dir: str) -> int:
    """Fork this process's zygote now, before it becomes the member's server; its pid.

    Called by the fork-server's child once it is the member (uid, cgroup, stdio,
    environment) and before it runs the server: no thread, event loop or zmq
    context exists yet, and every module the zygote needs is already imported
    and shared with the fork-server. The server's end of the socket stays open
    in this process and is named in ``LABFLEET_KERNEL_ZYGOTE`` for the server's
    extension (``spawn.kernel_zygote``). ``script_dir`` is the ``sys.path``
    entry the server's script put first: a kernel does not import from there.
    """
    server = os.getpid()
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    pid = os.fork()
    if pid == 0:  # the zygote: never returns
        code = 1
        try:
            ours.close()
            keep = theirs.fileno()
            os.closerange(3, keep)  # the hub's readiness pipe is the server's, not ours
            os.closerange(keep + 1, os.sysconf("SC_OPEN_MAX"))
            _set_process_name(PROCESS_NAME)
            die_with_parent(server)
            if sys.path and sys.path[0] == script_dir:
                del sys.path[0]
            preload()
            send(theirs, {"ready": True, "pid": os.getpid()})
            serve(theirs)
            code = 0
        except BaseException:
            with contextlib.suppress(Exception):
                traceback.print_exc()
        finally:
            os._exit(code)
    theirs.close()
    os.environ[INHERITED_ENV] = f"{ours.detach()}:{pid}"
    return pid


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="kernel_zygote_main")
    parser.add_argument("--fd", type=int, required=True)
    parser.add_argument("--parent", type=int, required=True)
    args = parser.parse_args(argv)
    die_with_parent(args.parent)
    _set_process_name(PROCESS_NAME)
    if sys.path and sys.path[0] in ("", os.getcwd()):
        del sys.path[0]  # as ipykernel_launcher does: a kernel does not import from its cwd
    sock = socket.socket(fileno=args.fd)
    preload()
    send(sock, {"ready": True, "pid": os.getpid()})
    serve(sock)


if __name__ == "__main__":
    main()
