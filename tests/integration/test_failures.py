"""Failure posture: a crashed hub is restarted without touching servers, and an
orphaned server process (hub killed mid-spawn) is stopped on the next start."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from labfleet.spawn.processes import is_alive, start_ticks
from tests.integration.test_embedded_flow import PASSWORD, add_user
from tests.support.client import HubUser
from tests.support.platform import Platform

pytestmark = pytest.mark.integration


def _hub_pid(platform: Platform) -> int:
    return int((platform.data_dir / "state" / "jupyterhub.pid").read_text())


def _server_pid(platform: Platform, slug: str) -> tuple[int, int]:
    pid, ticks = (platform.data_dir / "state" / "servers" / f"{slug}.pid").read_text().split()
    return int(pid), int(ticks)


def test_hub_crash_keeps_servers_and_orphans_are_stopped(make_platform) -> None:
    platform: Platform = make_platform("culling: {enabled: false}\n")
    platform.start()
    add_user(platform.data_dir, "erin")
    erin = HubUser(platform.url, "erin")
    erin.login(PASSWORD)
    erin.start_server().raise_for_status()
    erin.wait_ready()
    token = erin.new_token()
    server = _server_pid(platform, "erin")

    # an orphan: a server process whose spawn the hub never recorded
    run_dir = platform.data_dir / "state" / "servers"
    orphan = subprocess.Popen(
        [sys.executable, "-c", "import time; time.sleep(600)"], start_new_session=True
    )
    ticks = start_ticks(orphan.pid)
    (run_dir / "ghost.pid").write_text(f"{orphan.pid} {ticks}\n")

    # the hub crashes: the supervisor restarts it, erin's server is untouched
    old_hub = _hub_pid(platform)
    os.kill(old_hub, signal.SIGKILL)
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        pid_file = platform.data_dir / "state" / "jupyterhub.pid"
        if pid_file.exists() and _hub_pid(platform) != old_hub and "orphaned" in platform.log():
            break
        time.sleep(0.5)
    assert "restarting it" in platform.log()
    erin.wait_ready(timeout=60)
    assert is_alive(*server), "a hub restart must never kill users' servers"
    assert _server_pid(platform, "erin") == server
    assert erin.run_code(token, "print(6*7)").strip() == "42"

    orphan.wait(timeout=30)
    assert not is_alive(orphan.pid, ticks), "the orphan must be stopped"
    assert not (run_dir / "ghost.pid").exists()
    erin.close()


def test_orphan_file_of_dead_process_is_just_removed(tmp_path: Path) -> None:
    from labfleet.up.orphans import stop_orphans

    (tmp_path / "gone.pid").write_text("999999 1\n")
    (tmp_path / "keep.pid").write_text(f"{os.getpid()} {start_ticks(os.getpid())}\n")
    assert stop_orphans(tmp_path, known={"keep"}) == []
    assert not (tmp_path / "gone.pid").exists() and (tmp_path / "keep.pid").exists()
