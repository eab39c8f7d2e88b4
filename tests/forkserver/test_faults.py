"""Fork-server faults (issue 11): a hung preload, a dead or hung fork-server, a changed
environment. Real fork-servers and real children; no hub.

Each test bounds its waits with the launcher's own settings (a short preload
timeout), so a regression shows as a wrong answer, not as a slow test.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import sysconfig
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from labfleet.spawn.forkserver import GENERATION_FILE, PRELOAD_ENV, ForkServerLauncher
from labfleet.spawn.processes import is_alive
from tests.forkserver.test_launcher import JUPYTER, _spec, _wait_exit

pytestmark = pytest.mark.integration


@pytest.fixture
def make_launcher() -> Iterator[object]:
    made: list[ForkServerLauncher] = []

    def make(**kwargs: float | bool) -> ForkServerLauncher:
        launcher = ForkServerLauncher(logging.getLogger("test-forkserver-faults"), **kwargs)
        made.append(launcher)
        return launcher

    yield make
    for launcher in made:
        launcher.close()


def test_a_hung_preload_is_killed_and_launches_use_exec(
    tmp_path: Path, make_launcher, monkeypatch: pytest.MonkeyPatch, caplog
) -> None:
    site = tmp_path / "site"
    site.mkdir()
    (site / "hangs_at_import.py").write_text("import time\ntime.sleep(3600)\n")
    monkeypatch.setenv(PRELOAD_ENV, "hangs_at_import")
    launcher = make_launcher(warm_wait=600, preload_timeout=3)
    spec = _spec(tmp_path, "--runtime-dir")
    spec.env["PYTHONPATH"] = str(site)  # read at import time: part of the fork-server's key

    with caplog.at_level(logging.WARNING, logger="test-forkserver-faults"):
        first = launcher.launch(spec)
    kind, reason = launcher.history[-1]
    assert kind == "exec" and "timed out" in reason, launcher.history
    _wait_exit(first)
    helper = next(iter(launcher.helpers.values()))
    assert helper.proc is None, "the hung fork-server must be gone"
    warned = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert any("still preloading" in r.getMessage() for r in warned), caplog.text

    second = launcher.launch(spec)  # backs off: straight to exec, no second wait
    assert launcher.history[-1][0] == "exec" and "recently" in launcher.history[-1][1]
    _wait_exit(second)


def test_the_rehearsal_timeout_kills_a_hung_rehearsal(tmp_path: Path) -> None:
    """``rehearse`` used to block in read() for as long as the child hung."""
    script = (
        "import os, time, labfleet.spawn.forkserver_main as m\n"
        "def hang(fd):\n"
        "    open(os.environ['MARK'], 'w').write(str(os.getpid()))\n"
        "    time.sleep(3600)\n"
        "m._rehearsal_child = hang\n"
        "try:\n"
        "    m.rehearse(timeout=2)\n"
        "except m.RehearsalTimeout as exc:\n"
        "    print('timeout:', exc)\n"
    )
    mark = tmp_path / "child.pid"
    done = subprocess.run(
        [sys.executable, "-c", script],
        env={**os.environ, "MARK": str(mark)},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert "timeout:" in done.stdout, done.stdout + done.stderr
    assert not is_alive(int(mark.read_text())), "the hung rehearsal child must be killed"


def _warm_launch(launcher: ForkServerLauncher, tmp_path: Path) -> int:
    pid = launcher.launch(_spec(tmp_path, "--runtime-dir"))
    assert launcher.history[-1] == ("forkserver", str(pid)), launcher.history
    _wait_exit(pid)
    return pid


def test_a_dead_or_hung_forkserver_is_found_by_the_watchdog_and_replaced(
    tmp_path: Path, make_launcher
) -> None:
    launcher = make_launcher(warm_wait=600, rehearse=False, ping_timeout=1)
    _warm_launch(launcher, tmp_path)
    helper = next(iter(launcher.helpers.values()))
    assert launcher.check_health() == [], "a warm fork-server answers the ping"

    assert helper.proc is not None
    dead = helper.proc
    dead.kill()
    dead.wait()
    problems = launcher.check_health()
    assert problems and "exited" in problems[0], problems
    assert helper.proc is not None and helper.proc.pid != dead.pid, "a new one is warming"
    _warm_launch(launcher, tmp_path)  # the next spawn forks: no exec in between

    hung = helper.proc
    os.kill(hung.pid, signal.SIGSTOP)  # alive, answers nothing
    try:
        assert launcher.check_health() == [], "one missed ping is not enough (a busy machine)"
        assert hung.poll() is None
        problems = launcher.check_health()
    finally:
        if hung.poll() is None:
            os.kill(hung.pid, signal.SIGCONT)
    assert problems and "did not answer 2 pings in a row" in problems[0], problems
    assert hung.poll() is not None, "the hung fork-server must be killed"
    assert helper.proc is not None and helper.proc.pid != hung.pid
    _warm_launch(launcher, tmp_path)
    assert [kind for kind, _ in launcher.history] == ["forkserver"] * 3


def test_a_new_environment_generation_gets_a_fresh_forkserver(
    tmp_path: Path, make_launcher
) -> None:
    """``labfleet envs install`` touches ``<prefix>/.labfleet-generation``; the next spawn
    must use a fork-server that imported the new packages, and the old one is stopped."""
    env = tmp_path / "venv"
    subprocess.run(
        [sys.executable, "-m", "venv", "--without-pip", str(env)], check=True, timeout=120
    )
    # this environment's packages (jupyter_server, labfleet) seen from the new one
    (site_dir,) = (env / "lib").glob("python3*/site-packages")
    parent_site = Path(sysconfig.get_paths()["purelib"])
    (site_dir / "_parent.pth").write_text(f"import site; site.addsitedir({str(parent_site)!r})\n")
    script = env / "bin" / "jupyter"
    body = JUPYTER.read_text().split("\n", 1)[1]
    script.write_text(f"#!{env / 'bin' / 'python'}\n{body}")
    script.chmod(0o755)
    launcher = make_launcher(warm_wait=600, rehearse=False)

    def launch() -> None:
        spec = replace(_spec(tmp_path, "--runtime-dir"), argv=[str(script), "--runtime-dir"])
        pid = launcher.launch(spec)
        assert launcher.history[-1] == ("forkserver", str(pid)), launcher.history
        _wait_exit(pid)

    (env / GENERATION_FILE).write_text("1\n")
    launch()
    (old,) = launcher.helpers.values()
    assert old.generation == "1" and old.proc is not None
    old_proc = old.proc

    (env / GENERATION_FILE).write_text("2\n")
    launch()
    (new,) = launcher.helpers.values()
    assert new is not old and new.generation == "2"
    old_proc.wait(30)  # retired: stopped once idle
    deadline = time.monotonic() + 30
    while old.proc is not None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert old.proc is None
