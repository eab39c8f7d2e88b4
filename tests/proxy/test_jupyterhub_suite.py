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

import os
import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import PROXY_BIN

pytestmark = pytest.mark.integration


def test_jupyterhub_external_proxy_test_passes_through_labfleet_proxy(tmp_path: Path) -> None:
    calls = tmp_path / "calls.log"
    shim = tmp_path / "bin" / "configurable-http-proxy"
    shim.parent.mkdir()
    shim.write_text(f'#!/bin/sh\necho "$@" >> {calls}\nexec {PROXY_BIN} "$@"\n')
    shim.chmod(0o755)
    env = dict(os.environ, PATH=f"{shim.parent}:{os.environ['PATH']}")
    proc = subprocess.run(
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
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stdout[-3000:]
    assert "1 passed" in proc.stdout
    assert len(calls.read_text().splitlines()) >= 2  # started, and restarted by the hub
