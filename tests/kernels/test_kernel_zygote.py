"""Kernels forked from the server's kernel zygote (issue 16), in a real jupyter_server.

A real server with the ``spawn.kernel_zygote`` extension, real kernels started
over REST and driven over the websocket: they run code with the kernelspec's
environment, the notebook's directory, the server's uid and cgroup; interrupt
and restart work (JupyterLab uses both); a shut-down kernel leaves no process;
SIGKILL of the server takes the zygote and its kernels with it; a kernelspec
the zygote cannot serve starts the normal way.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from labfleet.spawn.kernel_zygote import (
    Zygote,
    fits_zygote,
    listen_addresses,
    wait_listening,
)
from labfleet.spawn.processes import is_alive
from labfleet.spawn.server_tuning import zygote_args as server_args
from tests.support.client import _execute
from tests.support.platform import free_port

pytestmark = pytest.mark.integration

TOKEN = "not-a-secret"
HEADERS = {"Authorization": f"token {TOKEN}"}
#: prints what a test checks about the kernel process it runs in
WHO = (
    "import os, json; print(json.dumps({'pid': os.getpid(), 'ppid': os.getppid(), "
    "'uid': os.getuid(), 'cwd': os.getcwd(), 'var': os.environ.get('ZYGOTE_SPEC_VAR'), "
    "'cgroup': open('/proc/self/cgroup').read()}))"
)


@dataclass
class Server:
    process: subprocess.Popen[bytes]
    url: str
    log: Path

    @property
    def zygote_pid(self) -> int:
        found = re.search(r"kernel zygote started \(pid (\d+)\)", self.log.read_text())
        assert found, self.log.read_text()[-3000:]
        return int(found.group(1))


def _kernelspec(share: Path, name: str, env: dict[str, str]) -> None:
    spec = {
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": name,
        "language": "python",
        "env": env,
    }
    folder = share / "kernels" / name
    folder.mkdir(parents=True)
    (folder / "kernel.json").write_text(json.dumps(spec))


def _wait_for(check: object, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():  # type: ignore[operator]
            return
        time.sleep(0.1)
    raise AssertionError(f"not within {timeout} s: {what}")


@contextlib.contextmanager
def running_server(tmp_path: Path) -> Iterator[Server]:
    share = tmp_path / "share"
    _kernelspec(share, "zspec", {"ZYGOTE_SPEC_VAR": "from-the-spec"})
    _kernelspec(share, "otherpy", {"PYTHONDONTWRITEBYTECODE": "1"})  # not the zygote's
    (tmp_path / "notebooks").mkdir()
    port = free_port()
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(tmp_path),
        "JUPYTER_PATH": str(share),
        "JUPYTER_CONFIG_DIR": str(tmp_path / "config"),
        "JUPYTER_RUNTIME_DIR": str(tmp_path / "runtime"),
        "IPYTHONDIR": str(tmp_path / "ipython"),
    }
    argv = [
        str(Path(sys.prefix) / "bin" / "jupyter-server"),
        f"--ServerApp.port={port}",
        "--ServerApp.ip=127.0.0.1",
        "--ServerApp.port_retries=0",
        "--ServerApp.open_browser=False",
        f"--ServerApp.root_dir={tmp_path}",
        f"--IdentityProvider.token={TOKEN}",
        *server_args(),
        *(["--allow-root"] if os.getuid() == 0 else []),
    ]
    log = tmp_path / "server.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            argv,
            env=env,
            cwd=tmp_path,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    url = f"http://127.0.0.1:{port}/"

    def serves() -> bool:
        assert process.poll() is None, log.read_text()[-3000:]
        with contextlib.suppress(httpx.HTTPError):
            return httpx.get(url + "api/status", headers=HEADERS, timeout=5).status_code == 200
        return False

    started = Server(process, url, log)
    try:
        _wait_for(serves, 120, "the server serves")
        yield started
    finally:
        zygote = None
        with contextlib.suppress(AssertionError):
            zygote = started.zygote_pid
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
        if zygote is not None and is_alive(zygote):
            os.kill(zygote, signal.SIGKILL)


@pytest.fixture(scope="module")
def shared(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """One server for the tests that leave it whole (a start is seconds on 2 cores)."""
    with running_server(tmp_path_factory.mktemp("zygote")) as server:
        yield server


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    """A server of the test's own, for tests that kill part of it."""
    with running_server(tmp_path) as server:
        yield server


async def _start(server: Server, name: str, path: str = "notebooks/a.ipynb") -> str:
    async with httpx.AsyncClient(headers=HEADERS, timeout=120) as http:
        resp = await http.post(
            server.url + "api/sessions",
            json={"path": path, "type": "notebook", "kernel": {"name": name}},
        )
        resp.raise_for_status()
        return str(resp.json()["kernel"]["id"])


async def _run(server: Server, kernel_id: str, code: str, timeout: float = 120) -> str:
    ws = server.url.replace("http", "ws", 1) + f"api/kernels/{kernel_id}/channels"
    return await asyncio.wait_for(_execute(ws, HEADERS, code), timeout)


async def _who(server: Server, kernel_id: str) -> dict[str, object]:
    out = await _run(server, kernel_id, WHO)
    return dict(json.loads(out))


async def _post(server: Server, path: str) -> None:
    async with httpx.AsyncClient(headers=HEADERS, timeout=120) as http:
        (await http.post(server.url + path)).raise_for_status()


async def _delete(server: Server, path: str) -> None:
    async with httpx.AsyncClient(headers=HEADERS, timeout=120) as http:
        (await http.delete(server.url + path)).raise_for_status()


def _dead(pid: int) -> bool:
    """Gone, or a zombie (it runs nothing; its parent reaps it)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat.rsplit(")", 1)[1].split()[0] == "Z"


def _own_cgroup(pid: int) -> str:
    return Path(f"/proc/{pid}/cgroup").read_text()


async def test_a_forked_kernel_runs_as_the_server_with_the_specs_env_and_cwd(
    shared: Server,
) -> None:
    server = shared
    kernel_id = await _start(server, "zspec")
    who = await _who(server, kernel_id)
    assert who["ppid"] == server.zygote_pid, "forked from the zygote"
    assert who["var"] == "from-the-spec"
    assert who["cwd"] == str(server.log.parent / "notebooks")
    assert who["uid"] == os.getuid()
    assert who["cgroup"] == _own_cgroup(server.process.pid)
    assert "forked from the zygote" in server.log.read_text()


async def test_a_kernel_start_answers_once_the_kernel_listens(shared: Server) -> None:
    """Every socket of the new kernel accepts a connection when its start has answered.

    Before, the start answered while the forked kernel was still initialising; the
    websocket's IOPub subscription then raced the kernel's first status messages and
    a member's first cell waited for the server's next ``kernel_info`` nudge, 0.5 s on.
    """
    kernel_id = await _start(shared, "zspec")
    info = json.loads((shared.log.parent / "runtime" / f"kernel-{kernel_id}.json").read_text())
    addresses = listen_addresses(info)
    assert {port for _, _, port in addresses} == {
        info[key] for key in ("shell_port", "iopub_port", "stdin_port", "control_port", "hb_port")
    }
    refused = []
    for _, host, port in addresses:  # one try each: no waiting here
        try:
            socket.create_connection((host, port), timeout=5).close()
        except OSError as exc:
            refused.append((port, exc))
    assert not refused
    assert json.loads(await _run(shared, kernel_id, "print(6 * 7)")) == 42


async def test_interrupt_and_restart_of_a_forked_kernel(shared: Server) -> None:
    server = shared
    kernel_id = await _start(server, "python3")
    first = await _who(server, kernel_id)
    assert first["ppid"] == server.zygote_pid
    running = asyncio.create_task(_run(server, kernel_id, "import time; time.sleep(300)"))
    await asyncio.sleep(1.0)  # let the cell start (an interrupt before it is a no-op)
    await _post(server, f"api/kernels/{kernel_id}/interrupt")
    assert "KeyboardInterrupt" in await running
    await _post(server, f"api/kernels/{kernel_id}/restart")
    second = await _who(server, kernel_id)
    assert second["pid"] != first["pid"]
    assert second["ppid"] == server.zygote_pid, "the restarted kernel is forked too"
    _wait_for(lambda: not is_alive(int(first["pid"])), 30, "the old kernel is gone")  # type: ignore[call-overload]


async def test_a_shut_down_kernel_leaves_no_process(shared: Server) -> None:
    server = shared
    kernel_id = await _start(server, "python3", "notebooks/b.ipynb")
    pid = int((await _who(server, kernel_id))["pid"])  # type: ignore[call-overload]
    await _delete(server, f"api/kernels/{kernel_id}")
    _wait_for(lambda: not Path(f"/proc/{pid}").exists(), 30, "no kernel process (nor zombie)")


def _atexit_marker(path: Path) -> str:
    return f"import atexit; atexit.register(lambda: open({str(path)!r}, 'w').write('bye'))"


async def test_a_shut_down_kernel_runs_its_exit_hooks(shared: Server, tmp_path: Path) -> None:
    kernel_id = await _start(shared, "python3", "notebooks/d.ipynb")
    await _run(shared, kernel_id, _atexit_marker(tmp_path / "bye"))
    await _delete(shared, f"api/kernels/{kernel_id}")
    _wait_for(lambda: (tmp_path / "bye").exists(), 60, "the kernel's atexit hook ran")


async def test_the_spawners_sigterm_to_the_session_stops_kernels_politely(
    server: Server, tmp_path: Path
) -> None:
    kernel_id = await _start(server, "python3")
    await _run(server, kernel_id, _atexit_marker(tmp_path / "bye"))
    os.killpg(server.process.pid, signal.SIGTERM)  # as the spawner stops a server
    server.process.wait(timeout=120)
    assert (tmp_path / "bye").exists(), "the kernel was killed, not shut down"


async def test_the_zygote_and_its_kernels_die_with_a_killed_server(server: Server) -> None:
    kernel_id = await _start(server, "python3")
    kernel = int((await _who(server, kernel_id))["pid"])  # type: ignore[call-overload]
    zygote = server.zygote_pid
    server.process.send_signal(signal.SIGKILL)
    server.process.wait()
    _wait_for(lambda: _dead(zygote), 30, "the zygote died with the server")
    _wait_for(lambda: _dead(kernel), 30, "its kernel died with the zygote")


async def test_a_kernelspec_the_zygote_cannot_serve_starts_normally(shared: Server) -> None:
    server = shared
    kernel_id = await _start(server, "otherpy", "notebooks/c.ipynb")
    who = await _who(server, kernel_id)
    assert who["ppid"] == server.process.pid, "a plain child of the server"
    assert "other PYTHON*/LD_* variables" in server.log.read_text()


async def test_a_dead_zygote_falls_back_to_a_normal_start(server: Server) -> None:
    os.kill(server.zygote_pid, signal.SIGKILL)
    _wait_for(lambda: _dead(server.zygote_pid), 30, "the zygote is gone")
    kernel_id = await _start(server, "python3")
    who = await _who(server, kernel_id)
    assert who["ppid"] == server.process.pid
    assert "kernel zygote failed" in server.log.read_text()


def test_only_the_default_python_kernelspec_fits() -> None:
    python = sys.executable
    argv = [python, "-m", "ipykernel_launcher", "-f", "c.json"]
    assert fits_zygote(argv, {"A": "1"}, python, {}) == ""
    assert fits_zygote(["/other/python", *argv[1:]], {}, python, {}).startswith("another")
    assert fits_zygote(["R", "--slave"], {}, python, {}).startswith("not an ipykernel")
    assert fits_zygote(argv, {"PYTHONPATH": "/x"}, python, {}) != ""


def test_the_spawners_arguments_enable_the_zygote_beside_the_ready_signal() -> None:
    from jupyter_server.serverapp import ServerApp

    from labfleet.spawn import server_ready, server_tuning

    ServerApp.clear_instance()
    app = ServerApp()
    app.parse_command_line([*server_tuning.server_args(), *server_ready.server_args()])
    assert app.jpserver_extensions == {
        "labfleet.spawn.kernel_nodelay": True,
        "labfleet.spawn.kernel_zygote": True,
        "labfleet.spawn.lab_settings": True,
        "labfleet.spawn.server_ready": True,
    }
    ServerApp.clear_instance()
    assert server_tuning.KERNEL_ZYGOTE not in " ".join(server_tuning.server_args(False))


#: in a child forked from a preloaded zygote: initialise a kernel, report what it imported
_INITIALISE_IN_FORK = r"""
import json, os, sys
from jupyter_client.connect import write_connection_file
from labfleet.spawn import kernel_zygote_main
kernel_zygote_main.preload()
connection = os.path.join(os.getcwd(), "kernel.json")
write_connection_file(connection, ip="127.0.0.1", key=b"k")
before = set(sys.modules)
report = os.open(sys.argv[1], os.O_WRONLY)
if os.fork() == 0:
    os.environ.clear()  # as run_kernel: the kernelspec's environment only
    for name, value in kernel_zygote_main.IMPORT_ENV_DEFAULTS.items():
        os.environ.setdefault(name, value)
    sys.argv = ["ipykernel_launcher", "-f", connection]
    from ipykernel import kernelapp
    app = kernelapp.IPKernelApp.instance()
    app.initialize()
    new = sorted(set(sys.modules) - before)
    os.write(report, json.dumps({"new": new, "env": dict(os.environ)}).encode())
    os._exit(0)
os.wait()
"""


def test_a_forked_kernel_initialises_without_importing_the_heavy_parts(tmp_path: Path) -> None:
    """The debugger (debugpy), psutil and the shell's helpers come from the zygote.

    They were imported by each kernel as it initialised: ~0.1 of its 0.15 CPU-s,
    all of it between the member's request and the first output. ``PYDEVD_USE_FRAME_EVAL``
    is what the debugger import sets in a kernel's environment, so a forked kernel
    that skips the import still has it.
    """
    report = tmp_path / "report.json"
    report.touch()
    subprocess.run(
        [sys.executable, "-c", _INITIALISE_IN_FORK, str(report)],
        check=True,
        timeout=120,
        capture_output=True,
        cwd=tmp_path,
        env={**os.environ, "HOME": str(tmp_path), "IPYTHONDIR": str(tmp_path / "ipython")},
    )
    found = json.loads(report.read_text())
    heavy = {"ipykernel.debugger", "debugpy", "psutil", "sqlite3", "pdb", "IPython.core.debugger"}
    assert heavy.isdisjoint(found["new"]), sorted(heavy & set(found["new"]))
    assert len(found["new"]) < 20, found["new"]
    assert found["env"].get("PYDEVD_USE_FRAME_EVAL") == "NO"


def test_waiting_for_a_kernel_on_ipc_sockets(tmp_path: Path) -> None:
    """As root, kernels use ipc sockets (``spawn.runtime_dirs``): a socket file is a bound port."""
    prefix = tmp_path / "kernel-ipc"
    info = {"transport": "ipc", "ip": str(prefix), "shell_port": 1, "iopub_port": 2, "key": "k"}
    assert listen_addresses(info) == [("ipc", str(prefix), 2), ("ipc", str(prefix), 1)]
    bound = []
    try:
        for port in (1, 2):
            sock = socket.socket(socket.AF_UNIX)
            sock.bind(f"{prefix}-{port}")
            bound.append(sock)
        assert asyncio.run(wait_listening(info, lambda: True, timeout=5))
        os.unlink(f"{prefix}-2")  # a kernel that died before binding iopub: no wait for it
        assert not asyncio.run(wait_listening(info, lambda: False, timeout=5))
    finally:
        for sock in bound:
            sock.close()


def test_a_kernels_exit_status_is_taken_from_the_zygotes_notice_at_once() -> None:
    """``Zygote.exit_status`` returns as soon as the notice for that kernel is read.

    It runs on the server's event loop (``ZygoteKernel.poll``, once a kernel has
    ended). It used to read the notice, file it, and go on waiting for some other
    message until its timeout ran out: every kernel shutdown froze the member's
    whole server (all their notebooks) for the default second. Here the zygote's
    end of the socket is played by the test, and the timeout is far longer than
    the join: the call must end because of the notice, not the clock.
    """
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    stand_in = subprocess.Popen(["true"])  # the zygote process the server would hold
    stand_in.wait()
    zygote = Zygote(ours, stand_in)
    answers: list[int] = []
    reader = threading.Thread(
        target=lambda: answers.append(zygote.exit_status(4242, timeout=600)), daemon=True
    )
    try:
        theirs.send(json.dumps({"exit": 4242, "status": 3}).encode())
        reader.start()
        reader.join(60)
        assert answers == [3]
    finally:
        theirs.close()  # end of file: a call still waiting returns
        reader.join(60)
        ours.close()
