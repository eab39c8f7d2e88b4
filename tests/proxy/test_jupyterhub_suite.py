"""JupyterHub's own ``jupyterhub/tests/test_proxy.py``, run against labfleet-proxy.

JupyterHub's tests start ``configurable-http-proxy`` from PATH; a shim of that
name that execs ``labfleet-proxy`` (and records that it was used) puts our
proxy under the stock tests. ``test_external_proxy`` exercises the whole CHP
contract: start, the REST API, routes, a proxy restarted by the hub.

The MockHub-based tests of that file (``test_check_routes`` …) time out on the
shared development VM with Node CHP as well (MockHub's event loop stalls for
about a minute under load), so they are not selected here.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from .conftest import PROXY_BIN

pytestmark = pytest.mark.integration

PIDS_ROOT = Path("/sys/fs/cgroup/pids")


@contextlib.contextmanager
def contained() -> Iterator[Path | None]:
    """A pids cgroup for the stock suite's run, so that what it leaves is stopped.

    JupyterHub starts its mock servers in sessions of their own, and one can
    outlive the run; every descendant stays in the cgroup whatever its session,
    so its pids are read from there and killed, then the group is removed.
    """
    if os.geteuid() != 0 or not PIDS_ROOT.is_dir():
        yield None
        return
    group = PIDS_ROOT / f"labfleet-test-{uuid.uuid4().hex[:8]}"
    group.mkdir()
    try:
        yield group
    finally:
        for _ in range(100):  # up to 10 s for the killed to exit
            pids = [int(pid) for pid in (group / "cgroup.procs").read_text().split()]
            if not pids:
                break
            for pid in pids:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            time.sleep(0.1)
        with contextlib.suppress(OSError):
            group.rmdir()


def test_jupyterhub_external_proxy_test_passes_through_labfleet_proxy(tmp_path: Path) -> None:
    calls = tmp_path / "calls.log"
    shim = tmp_path / "bin" / "configurable-http-proxy"
    shim.parent.mkdir()
    shim.write_text(f'#!/bin/sh\necho "$@" >> {calls}\nexec {PROXY_BIN} "$@"\n')
    shim.chmod(0o755)
    env = dict(os.environ, PATH=f"{shim.parent}:{os.environ['PATH']}")
    with contained() as group:
        proc = _run_stock_test(env, tmp_path, group)
    assert proc.returncode == 0, proc.stdout[-3000:]
    assert "1 passed" in proc.stdout
    assert len(calls.read_text().splitlines()) >= 2  # started, and restarted by the hub


def _run_stock_test(
    env: dict[str, str], cwd: Path, group: Path | None
) -> subprocess.CompletedProcess[str]:
    join = (
        None if group is None else (lambda: (group / "cgroup.procs").write_text(str(os.getpid())))
    )
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "--pyargs",
            "jupyterhub.tests.test_proxy",
            "-k",
            "test_external_proxy",
            "-p",
            "no:cacheprovider",
            "-o",
            "asyncio_mode=auto",
            "-o",
            "asyncio_default_fixture_loop_scope=module",
            "-W",
            "ignore::pytest.PytestUnknownMarkWarning",
            "-q",
        ],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        preexec_fn=join,  # joins the cgroup before exec, nothing else
    )
