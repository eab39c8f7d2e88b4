"""JupyterHub's own ``jupyterhub/tests/test_proxy.py``, run against labfleet-proxy.

JupyterHub's tests start ``configurable-http-proxy`` from PATH; a shim of that
name that execs ``labfleet-proxy`` (and records that it was used) puts our
proxy under the stock tests. The whole file runs: ``test_external_proxy`` (the
CHP contract: start, REST API, routes, a proxy restarted by the hub) and the
MockHub-based tests (``test_check_routes``, ``test_extra_routes``,
``test_add_get_delete``, ``test_proxy_patch_bad_request_data``,
``test_proxy_bind_ip`` and the validation tests).

Why the MockHub tests used to hang (with Node CHP too): the installed package
ships its tests without its pytest settings, and pytest-asyncio 1.x runs each
test function on a fresh function-scoped event loop unless told otherwise.
JupyterHub's ``app`` fixture is module-scoped, so the hub's tornado server
lives on the module loop, which does not run while a test function awaits on
its own loop: the hub never answered the requests the proxy relayed to it, and
the test's ``requests`` thread waited forever. Running the tests on the module
loop (``asyncio_default_test_loop_scope=module``) is what those fixtures need.

Two variants: path routing (the default; two ``test_extra_routes`` cases need
subdomains and skip themselves) and host routing (``--host-routing``; every
test runs). JupyterHub's CI names ``localhost.jovyan.org`` as the subdomain
host, which needs a wildcard DNS record to 127.0.0.1 that this machine can't
reach; ``localhost`` (from /etc/hosts) serves, because the user host names
(``zoe.localhost``) are only route keys in these tests, never resolved.

A plugin of ours (``jupyterhub_patience``) raises the hub's
``slow_spawn_timeout`` so that a spawn slowed by a loaded machine isn't
reported as "pending" before its route exists (which failed
``test_check_routes`` through Node CHP too); nothing else of the stock tests
changes.

The default run covers labfleet-proxy with path routing. The host-routing
variant and the same runs against Node CHP (the control: whatever fails there
is not ours) are behind the ``stock_suite`` marker.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path

import pytest

from .conftest import PROXY_BIN, REPO

pytestmark = pytest.mark.integration

PIDS_ROOT = Path("/sys/fs/cgroup/pids")
NEEDS_SUBDOMAINS = "requires subdomains"  # the skip reason of test_extra_routes
ALL_TESTS = 34  # in JupyterHub 6.1's test_proxy.py, parametrised cases counted


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


def _chp_bin() -> str | None:
    local = REPO / ".node" / "node_modules" / ".bin" / "configurable-http-proxy"
    return str(local) if local.exists() else shutil.which("configurable-http-proxy")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.timeout(660)
@pytest.mark.parametrize(
    ("proxy", "routing"),
    [
        ("labfleet", "path"),
        pytest.param("labfleet", "host", marks=pytest.mark.stock_suite),
        pytest.param("chp", "path", marks=pytest.mark.stock_suite),
        pytest.param("chp", "host", marks=pytest.mark.stock_suite),
    ],
)
def test_jupyterhub_test_proxy_passes(tmp_path: Path, proxy: str, routing: str) -> None:
    calls = tmp_path / "calls.log"
    target = PROXY_BIN if proxy == "labfleet" else _chp_bin()
    if target is None:
        pytest.skip("Node configurable-http-proxy is not installed")
    shim = tmp_path / "bin" / "configurable-http-proxy"
    shim.parent.mkdir()
    shim.write_text(f'#!/bin/sh\necho "$@" >> {calls}\nexec {target} "$@"\n')
    shim.chmod(0o755)
    env = dict(os.environ, PATH=f"{shim.parent}:{os.environ['PATH']}")
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    env.pop("JUPYTERHUB_TEST_SUBDOMAIN_HOST", None)
    if routing == "host":
        env["JUPYTERHUB_TEST_SUBDOMAIN_HOST"] = f"http://localhost:{_free_port()}"
    report = tmp_path / "report.xml"
    with contained() as group:
        proc = _run_stock_suite(env, tmp_path, group, report)
    outcomes = _outcomes(report)
    failed = {name: why for name, (kind, why) in outcomes.items() if kind in ("failure", "error")}
    skipped = {name: why for name, (kind, why) in outcomes.items() if kind == "skipped"}
    assert not failed, f"{failed}\n{proc.stdout[-3000:]}"
    assert proc.returncode == 0, proc.stdout[-3000:]
    assert len(outcomes) == ALL_TESTS, sorted(outcomes)
    assert all(NEEDS_SUBDOMAINS in why for why in skipped.values()), skipped
    assert len(skipped) == (2 if routing == "path" else 0), skipped
    started = calls.read_text().splitlines()
    assert len(started) >= 2  # the shim was used: started, and restarted by the hub
    assert all(("--host-routing" in line) == (routing == "host") for line in started)


def _outcomes(report: Path) -> dict[str, tuple[str, str]]:
    """Each test case's name → (outcome, message) from pytest's JUnit XML."""
    outcomes: dict[str, tuple[str, str]] = {}
    for case in ET.parse(report).getroot().iter("testcase"):  # noqa: S314 (our own file)
        kind, why = "passed", ""
        for child in case:
            if child.tag in ("failure", "error", "skipped"):
                kind, why = child.tag, child.get("message", "")
                break
        outcomes[case.get("name", "?")] = (kind, why)
    return outcomes


def _run_stock_suite(
    env: dict[str, str], cwd: Path, group: Path | None, report: Path
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
            "-p",
            "no:cacheprovider",
            "-o",
            "asyncio_mode=auto",
            "-o",
            "asyncio_default_fixture_loop_scope=module",
            "-o",
            "asyncio_default_test_loop_scope=module",  # where the module's hub runs
            "-o",
            "faulthandler_timeout=240",  # a stall prints every thread's stack
            "-W",
            "ignore::pytest.PytestUnknownMarkWarning",
            "-p",
            "tests.proxy.jupyterhub_patience",  # slow spawns are not failures here
            f"--junitxml={report}",
            "-q",
        ],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        preexec_fn=join,  # joins the cgroup before exec, nothing else
    )
