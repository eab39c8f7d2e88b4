"""wait_listening: a real process that starts listening late, one that dies, one that hangs."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator

import pytest

from labfleet.spawn.readiness import wait_listening
from tests.support.platform import free_port

LISTEN_LATE = """
import socket, sys, time
time.sleep(float(sys.argv[2]))
s = socket.socket(); s.bind(("127.0.0.1", int(sys.argv[1]))); s.listen()
time.sleep(60)
"""


@pytest.fixture
def procs() -> Iterator[list[subprocess.Popen[bytes]]]:
    started: list[subprocess.Popen[bytes]] = []
    yield started
    for proc in started:
        proc.kill()
        proc.wait()


async def test_returns_once_the_port_accepts(procs: list[subprocess.Popen[bytes]]) -> None:
    port = free_port()
    procs.append(subprocess.Popen([sys.executable, "-c", LISTEN_LATE, str(port), "0.5"]))
    assert await wait_listening("127.0.0.1", port, procs[0].pid, timeout=30)
    assert procs[0].poll() is None


async def test_gives_up_when_the_process_dies(procs: list[subprocess.Popen[bytes]]) -> None:
    procs.append(subprocess.Popen([sys.executable, "-c", "import time; time.sleep(0.3)"]))
    assert not await wait_listening("127.0.0.1", free_port(), procs[0].pid, timeout=30)
    assert procs[0].poll() is not None, "must return because it died, not by timeout"


async def test_times_out_on_a_silent_process(procs: list[subprocess.Popen[bytes]]) -> None:
    procs.append(subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"]))
    assert not await wait_listening("127.0.0.1", free_port(), procs[0].pid, timeout=0.5)
    assert procs[0].poll() is None
