"""Which running proxy a restarted hub keeps (hub/kept_proxy.py): the one it would start."""

from __future__ import annotations

import subprocess
import sys
import time

from labfleet.hub.kept_proxy import KeptProcess, read_cmdline, runs_as_configured
from labfleet.spawn.processes import start_ticks

COMMAND = ["/venv/bin/python3", "/venv/bin/labfleet-proxy", "--workers", "2"]
RUNNING = [*COMMAND, "--ip", "127.0.0.1", "--port", "8000", "--api-ip", "127.0.0.1"]
RUNNING += ["--api-port", "8001", "--error-target", "http://127.0.0.1:8081/hub/error"]


def test_the_same_command_and_ports_are_kept() -> None:
    assert runs_as_configured(RUNNING, COMMAND[1:], {"--port": "8000", "--api-port": "8001"})


def test_another_command_port_or_tls_file_is_replaced() -> None:
    ports = {"--port": "8000", "--api-port": "8001"}
    assert not runs_as_configured(RUNNING, ["/venv/bin/labfleet-proxy", "--workers", "4"], ports)
    assert not runs_as_configured(RUNNING, COMMAND, {"--port": "9000", "--api-port": "8001"})
    assert not runs_as_configured(RUNNING, COMMAND, {**ports, "--ssl-cert": "/tls/cert.pem"})
    assert not runs_as_configured([], COMMAND, ports)


def test_a_kept_process_is_polled_and_stopped_by_pid_and_start_time() -> None:
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        for _ in range(200):  # until the child has exec'd (before that: our own command line)
            if read_cmdline(proc.pid)[-1:] == ["import time; time.sleep(60)"]:
                break
            time.sleep(0.05)
        assert read_cmdline(proc.pid)[-1] == "import time; time.sleep(60)"
        kept = KeptProcess(proc.pid, start_ticks(proc.pid))
        assert kept.poll() is None
        assert KeptProcess(proc.pid, 1).poll() == -1  # same pid, another start time: not it
        kept.terminate()
        proc.wait(timeout=30)
        assert kept.poll() == -1
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
