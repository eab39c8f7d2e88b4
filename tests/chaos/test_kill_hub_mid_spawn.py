"""SIGKILL the hub at a random instant of a spawn, LABFLEET_CHAOS_COUNT times
(default 1; the seed is printed on failure), and check the invariants: no
server process the hub does not know, one hub, the user starts and runs code,
the hub database passes PRAGMA integrity_check."""

from __future__ import annotations

import os
import random
import signal
import sqlite3
import time

import pytest

from labfleet.spawn.processes import is_alive
from tests.integration.test_crash_recovery import _hub_pid, _wait_for
from tests.integration.test_embedded_flow import PASSWORD
from tests.support.client import HubUser
from tests.support.platform import Platform

pytestmark = [pytest.mark.integration, pytest.mark.chaos]

COUNT = int(os.environ.get("LABFLEET_CHAOS_COUNT", "1"))
SEED = int(os.environ.get("LABFLEET_CHAOS_SEED", "11"))


def _server_pids(platform: Platform) -> dict[str, tuple[int, int]]:
    found = {}
    for path in (platform.data_dir / "state" / "servers").glob("*.pid"):
        pid, ticks = (int(v) for v in path.read_text().split())
        if is_alive(pid, ticks):
            found[path.stem] = (pid, ticks)
    return found


@pytest.mark.skipif(COUNT == 1, reason="test_kill_components kills the hub mid-spawn")
@pytest.mark.timeout(300 * (COUNT + 1))
def test_kill_hub_mid_spawn(chaos_platform: Platform) -> None:
    rng = random.Random(SEED)
    platform = chaos_platform
    for round_ in range(COUNT):
        delay = rng.uniform(0.05, 0.4)
        note = f"seed {SEED}, round {round_}, kill after {delay:.3f} s"
        cora = HubUser(platform.url, "cora")
        cora.login(PASSWORD)
        hub = _hub_pid(platform.data_dir)
        cora.start_server()
        time.sleep(delay)
        os.kill(hub, signal.SIGKILL)
        cora.close()
        _wait_for(lambda h=hub: _hub_pid(platform.data_dir) != h and platform._healthy(), 120, note)
        cora = HubUser(platform.url, "cora")
        cora.login(PASSWORD)
        model = cora.server_model()
        running = _server_pids(platform)
        if not model:  # server_model() is the default server's model, {} when there is none
            # the hub does not believe in a server: none may run
            try:
                orphan = f"no orphan ({note}): {running}"
                _wait_for(lambda: "cora" not in _server_pids(platform), 60, orphan)
            except AssertionError as exc:
                raise AssertionError(f"{exc}\n{platform.log()[-6000:]}") from exc
            _wait_for(lambda c=cora: c.start_server().status_code in (201, 202, 400), 60, note)
        cora.wait_ready(timeout=120)
        assert cora.run_code(cora.new_token(), "print(6*7)").strip() == "42", note
        cora.stop_server()
        cora.wait_stopped(timeout=60)
        assert "cora" not in _server_pids(platform), note  # (other members may run)
        cora.close()
    with sqlite3.connect(platform.data_dir / "jupyterhub.sqlite") as db:
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    with sqlite3.connect(platform.data_dir / "accounts.sqlite") as db:
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
