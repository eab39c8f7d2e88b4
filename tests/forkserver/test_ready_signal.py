"""Event-driven readiness: the server says "I serve" over the hub's pipe (issue 16).

Real processes launched by the real launchers with a real pipe: a script that
speaks the protocol by hand (signal without any listening port, exit after
loading, silence, a port but no signal), then a real jupyter_server with the
``spawn.server_ready`` extension, by exec and by the fork-server (the pipe
crosses the fork-server's socket as SCM_RIGHTS).
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from labfleet.spawn.forkserver import ForkServerLauncher
from labfleet.spawn.launch import ExecLauncher, Launcher, LaunchSpec
from labfleet.spawn.processes import is_alive, signal_group
from labfleet.spawn.readiness import Readiness, ReadyPipe, wait_ready
from labfleet.spawn.server_ready import READY_FD_ENV, server_args
from tests.support.platform import free_port

#: speaks the protocol by hand: "L" at once, then after a pause "R", "exit" or nothing
BY_HAND = """
import os, socket, sys, time
fd = int(os.environ["LABFLEET_READY_FD"])
then, port = sys.argv[1], int(sys.argv[2])
if then not in ("listen", "late"):
    os.write(fd, b"L")
time.sleep(0.2)
if then == "late":  # loads after the poll began, listens, serves a moment later
    os.write(fd, b"L")
    s = socket.socket(); s.bind(("127.0.0.1", port)); s.listen()
    time.sleep(1.0)
    os.write(fd, b"R")
if then == "ready":
    os.write(fd, b"R"); os.close(fd)
elif then == "exit":
    sys.exit(3)
elif then == "listen":
    s = socket.socket(); s.bind(("127.0.0.1", port)); s.listen()
time.sleep(120)
"""


@pytest.fixture
def pids() -> Iterator[list[int]]:
    started: list[int] = []
    yield started
    for pid in started:
        if is_alive(pid):
            signal_group(pid, 9)
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, 0)


def _launch(
    launcher: Launcher, tmp_path: Path, argv: list[str], pipe: ReadyPipe, pids: list[int]
) -> int:
    spec = LaunchSpec(
        argv=argv,
        env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)},
        cwd=tmp_path,
        log_path=tmp_path / "server.log",
        ready_fd=pipe.write_fd,
    )
    pid = launcher.launch(spec)
    pids.append(pid)
    pipe.close_write()
    return pid


async def _by_hand(
    then: str, tmp_path: Path, pids: list[int], timeout: float = 60, fallback_after: float = 60
) -> tuple[Readiness, int]:
    pipe, port = ReadyPipe(), free_port()
    argv = [sys.executable, "-c", BY_HAND, then, str(port)]
    pid = _launch(ExecLauncher(), tmp_path, argv, pipe, pids)
    result = await wait_ready(pipe, "127.0.0.1", port, pid, None, timeout, fallback_after)
    assert pipe.read_fd == -1, "the wait closes the hub's end"
    return result, pid


async def test_the_signal_ends_the_wait_with_no_port_to_poll(
    tmp_path: Path, pids: list[int]
) -> None:
    result, pid = await _by_hand("ready", tmp_path, pids)
    assert result is Readiness.SIGNALLED  # nothing listens: only the pipe could tell
    assert is_alive(pid)


async def test_an_exit_after_loading_is_seen_at_once_not_at_the_timeout(
    tmp_path: Path, pids: list[int]
) -> None:
    result, pid = await _by_hand("exit", tmp_path, pids, timeout=600)
    assert result is Readiness.EXITED  # the closed pipe said so (a timeout gives TIMEOUT)
    assert not is_alive(pid)


async def test_a_silent_server_times_out_and_says_so(tmp_path: Path, pids: list[int]) -> None:
    result, pid = await _by_hand("silent", tmp_path, pids, timeout=1.0, fallback_after=0.1)
    assert result is Readiness.TIMEOUT
    assert "timeout" in result.value
    assert is_alive(pid)


async def test_a_server_without_the_extension_is_found_by_the_port_poll(
    tmp_path: Path, pids: list[int]
) -> None:
    result, _pid = await _by_hand("listen", tmp_path, pids, fallback_after=0.1)
    assert result is Readiness.LISTENING


async def test_a_late_hello_stops_a_port_poll_already_running(
    tmp_path: Path, pids: list[int]
) -> None:
    # the poll began (no L within 0.01 s); once L came, only R may end the wait, though
    # the port accepts before R (a bound socket is not yet a serving event loop)
    result, _pid = await _by_hand("late", tmp_path, pids, fallback_after=0.01)
    assert result is Readiness.SIGNALLED


# --- a real jupyter_server ----------------------------------------------------------------
JUPYTER_SERVER = Path(sys.prefix) / "bin" / "jupyter-server"


def _server_argv(tmp_path: Path, port: int) -> list[str]:
    root = ["--allow-root"] if os.getuid() == 0 else []
    return [
        str(JUPYTER_SERVER),
        f"--ServerApp.port={port}",
        "--ServerApp.ip=127.0.0.1",
        "--ServerApp.port_retries=0",
        "--ServerApp.open_browser=False",
        f"--ServerApp.root_dir={tmp_path}",
        "--IdentityProvider.token=not-a-secret",
        *server_args(),
        *root,
    ]


async def _real_server_signals(launcher: Launcher, tmp_path: Path, pids: list[int]) -> None:
    pipe, port = ReadyPipe(), free_port()
    pid = _launch(launcher, tmp_path, _server_argv(tmp_path, port), pipe, pids)
    result = await wait_ready(pipe, "127.0.0.1", port, pid, None, 600, fallback_after=600)
    assert result is Readiness.SIGNALLED, (tmp_path / "server.log").read_text()[-2000:]
    # at the signal it already serves HTTP (not merely a bound port)
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/api", timeout=30) as response:
        assert response.status == 200


@pytest.mark.integration
async def test_a_real_server_signals_when_it_serves_by_exec(
    tmp_path: Path, pids: list[int]
) -> None:
    await _real_server_signals(ExecLauncher(), tmp_path, pids)


@pytest.fixture
def forkserver() -> Iterator[ForkServerLauncher]:
    # generous: on a loaded 2-core machine preloading alone can take a minute
    started = ForkServerLauncher(logging.getLogger("test-ready"), warm_wait=600, rehearse=False)
    yield started
    started.close()


@pytest.mark.integration
async def test_a_real_server_signals_when_it_serves_from_the_forkserver(
    tmp_path: Path, pids: list[int], forkserver: ForkServerLauncher
) -> None:
    await _real_server_signals(forkserver, tmp_path, pids)
    assert forkserver.history[-1][0] == "forkserver", forkserver.history


def test_the_extension_takes_the_fd_out_of_the_environment() -> None:
    from labfleet.spawn import server_ready

    read_fd, write_fd = os.pipe()
    environ = {READY_FD_ENV: str(write_fd), "HOME": "/"}
    try:
        assert server_ready._take_fd(environ) == write_fd
        assert READY_FD_ENV not in environ  # kernels started later never see it
        assert not os.get_inheritable(write_fd)
        assert server_ready._take_fd({READY_FD_ENV: "junk"}) is None
    finally:
        os.close(read_fd)
        os.close(write_fd)
