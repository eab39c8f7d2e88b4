"""Launches run in their own small pool, not in asyncio's default one (issue 11).

A launch may wait for a cold fork-server; password hashing at login and every
other ``asyncio.to_thread`` use the default pool. Here more launches than the
default pool has threads wait on a real fork-server whose preload hangs, and a
``to_thread`` call (what a login does) must still run.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import sys
from pathlib import Path

import pytest

from labfleet.spawn.forkserver import PRELOAD_ENV, ForkServerLauncher
from labfleet.spawn.launch import LAUNCH_THREADS, LaunchSpec, launch_off_loop
from labfleet.spawn.processes import is_alive

pytestmark = pytest.mark.integration

#: asyncio's default pool size (ThreadPoolExecutor's default max_workers)
DEFAULT_POOL = min(32, (os.cpu_count() or 1) + 4)


def test_waiting_launches_leave_the_default_pool_free(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    site = tmp_path / "site"
    site.mkdir()
    (site / "hangs_at_import.py").write_text("import time\ntime.sleep(3600)\n")
    monkeypatch.setenv(PRELOAD_ENV, "hangs_at_import")
    launcher = ForkServerLauncher(
        logging.getLogger("test-launch-pool"), warm_wait=600, preload_timeout=600
    )
    python = Path(sys.prefix) / "bin" / "python"
    spec = LaunchSpec(
        argv=[str(python), "-c", "pass"],
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(site)},
        cwd=tmp_path,
        log_path=tmp_path / "server.log",
    )
    burst = min(DEFAULT_POOL + 1, LAUNCH_THREADS)
    if burst <= DEFAULT_POOL:
        pytest.skip(f"the default pool ({DEFAULT_POOL}) is not smaller than the launch pool")

    async def scenario() -> tuple[int, list[int]]:
        launches = [asyncio.ensure_future(launch_off_loop(launcher, spec)) for _ in range(burst)]
        await asyncio.sleep(1)  # every launch is now waiting for the cold fork-server
        assert not any(t.done() for t in launches), "the fork-server must still be preloading"
        try:
            # what a login's password check does; starved if launches held the default pool
            login_work = await asyncio.wait_for(asyncio.to_thread(sum, range(10)), 60)
        finally:
            launcher.close()  # waiting launches fall back to exec and return
        return login_work, list(await asyncio.gather(*launches))

    login_work, pids = asyncio.run(scenario())
    assert login_work == 45
    assert len(pids) == burst and [kind for kind, _ in launcher.history] == ["exec"] * burst
    for pid in pids:
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, 0)
        assert not is_alive(pid)
