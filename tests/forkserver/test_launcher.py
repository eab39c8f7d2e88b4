"""ForkServerLauncher on its own: a real fork-server, real children, no hub.

The child must be what ``ExecLauncher`` would have produced: its own session,
the pre-exec hooks run in *it*, the environment replaced, stdio in the log,
cwd set. A fork-server that dies is replaced; until then launches use exec.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from labfleet.spawn.forkserver import ForkServerLauncher
from labfleet.spawn.launch import LaunchSpec
from labfleet.spawn.limits.base import join_hook

pytestmark = pytest.mark.integration

JUPYTER = Path(sys.prefix) / "bin" / "jupyter"  # a console script of this environment


@pytest.fixture
def launcher() -> Iterator[ForkServerLauncher]:
    # generous: on a loaded 2-core machine preloading alone can take a minute
    started = ForkServerLauncher(logging.getLogger("test-forkserver"), warm_wait=600)
    yield started
    started.close()


def _spec(tmp_path: Path, *args: str, hook_file: Path | None = None) -> LaunchSpec:
    env = {
        "PATH": "/usr/bin:/bin",
        "HOME": str(tmp_path),
        "JUPYTER_RUNTIME_DIR": str(tmp_path / "runtime-from-env"),
    }
    env.update({k: v for k, v in os.environ.items() if k == "PYTHONPATH"})
    return LaunchSpec(
        argv=[str(JUPYTER), *args],
        env=env,
        cwd=tmp_path,
        log_path=tmp_path / "server.log",
        pre_exec=(join_hook([hook_file]),) if hook_file else (),
    )


def _wait_exit(pid: int, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            return
        if state == "Z":
            return
        time.sleep(0.05)
    raise AssertionError(f"{pid} still running")


def test_forked_child_applies_the_spec(tmp_path: Path, launcher: ForkServerLauncher) -> None:
    hook_file = tmp_path / "cgroup.procs"
    hook_file.write_text("")
    pid = launcher.launch(_spec(tmp_path, "--runtime-dir", hook_file=hook_file))
    assert launcher.history[-1] == ("forkserver", str(pid))
    _wait_exit(pid)
    assert hook_file.read_text() == str(pid), "the pre-exec hook must run in the child"
    assert (tmp_path / "server.log").read_text().strip() == str(tmp_path / "runtime-from-env")


def test_child_is_its_own_session_and_killable_by_group(
    tmp_path: Path, launcher: ForkServerLauncher
) -> None:
    # `jupyter --version` with an unreadable stdin would exit; `jupyter troubleshoot` too:
    # use the server itself in a mode that waits (a bad port makes it exit instead)
    spec = _spec(
        tmp_path, "server", "--ServerApp.port=0", "--ServerApp.open_browser=False", "--allow-root"
    )
    pid = launcher.launch(spec)
    assert launcher.history[-1][0] == "forkserver"
    stat = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    assert int(stat[3]) == pid, "new session: pid == sid"
    assert int(stat[2]) == pid, "new process group: pid == pgid"
    os.killpg(pid, signal.SIGKILL)
    _wait_exit(pid)


def test_dead_forkserver_falls_back_then_is_replaced(
    tmp_path: Path, launcher: ForkServerLauncher
) -> None:
    first = launcher.launch(_spec(tmp_path, "--runtime-dir"))
    assert launcher.history[-1][0] == "forkserver"
    _wait_exit(first)
    helper = next(iter(launcher.helpers.values()))
    assert helper.proc is not None
    helper.proc.kill()
    helper.proc.wait()

    fallback = launcher.launch(_spec(tmp_path, "--runtime-dir"))
    kind, reason = launcher.history[-1]
    assert kind == "exec" and "exited" in reason
    assert "forkserver_main" not in Path(f"/proc/{fallback}/cmdline").read_text()
    _wait_exit(fallback)

    replaced = launcher.launch(_spec(tmp_path, "--runtime-dir"))
    assert launcher.history[-1] == ("forkserver", str(replaced))
    _wait_exit(replaced)


@pytest.mark.skipif(os.getuid() != 0, reason="dropping privileges needs root")
def test_child_drops_privileges_before_reading_the_script(
    tmp_path: Path, launcher: ForkServerLauncher
) -> None:
    # nobody cannot run this environment's interpreter (it lives under /root here), so
    # exec cannot start it: the fork-server's child must refuse after the drop too, and
    # the fallback exec then fails the same way plain exec always did
    try:
        subprocess.run(
            [str(JUPYTER), "--runtime-dir"],
            user=65534,
            group=65534,
            capture_output=True,
            check=True,
            cwd="/",
        )
    except (OSError, subprocess.CalledProcessError):
        pass  # as expected here: nobody cannot run it
    else:
        pytest.skip("nobody can run this environment; the refusal cannot be provoked")
    spec = _spec(tmp_path, "--runtime-dir")
    spec = LaunchSpec(**{**spec.__dict__, "cwd": Path("/"), "uid": 65534, "gid": 65534})
    with pytest.raises(PermissionError):
        launcher.launch(spec)
    kind, reason = launcher.history[-1]
    assert kind == "exec" and "uid 65534 cannot execute" in reason
