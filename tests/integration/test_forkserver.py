"""The fork-server launcher through the real platform (``launcher_kind: forkserver``).

A server forked from the warm fork-server must be a real, independent
process: it runs code in a kernel, is the leader of its own session (so the
spawner can kill it by group), keeps running when the hub is killed and
restarted, and stops with its server. Any fork-server failure must fall back
to plain exec, visibly in the hub log.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import time
from pathlib import Path

import pytest

from tests.support.client import HubUser
from tests.support.platform import Platform, labfleet

pytestmark = pytest.mark.integration

PASSWORD = "correct horse battery staple"
FORKSERVER = (
    "culling: {enabled: false}\nhub: {extra_config: {LocalSpawner: {launcher_kind: forkserver}}}\n"
)


def _name(prefix: str) -> str:
    # users' control groups are machine-wide: a per-run name never meets another run's
    return f"{prefix}{secrets.token_hex(3)}"


def _add_user(data_dir: Path, name: str) -> None:
    result = labfleet(
        "users", "add", name, "--password-stdin", input=PASSWORD + "\n", data_dir=data_dir
    )
    assert result.returncode == 0, result.stderr


def _server_pid(platform: Platform, name: str) -> int:
    pid, _ticks = (platform.data_dir / "state" / "servers" / f"{name}.pid").read_text().split()
    return int(pid)


def _cmdline(pid: int) -> str:
    return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()


def _stat(pid: int) -> list[str]:
    text = Path(f"/proc/{pid}/stat").read_text()
    return text[text.rfind(")") + 2 :].split()


def _alive(pid: int) -> bool:
    try:
        return _stat(pid)[0] != "Z"
    except OSError:
        return False


def _private_and_shared_kib(pid: int) -> tuple[int, int]:
    """A process's private (its USS) and shared resident memory, from ``smaps_rollup``."""
    fields: dict[str, int] = {}
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines()[1:]:
        key, _, rest = line.partition(":")
        fields[key] = int(rest.split()[0])
    private = fields["Private_Clean"] + fields["Private_Dirty"]
    return private, fields["Shared_Clean"] + fields["Shared_Dirty"]


def _full_log(platform: Platform) -> str:
    assert platform.log_path is not None
    return platform.log_path.read_text(errors="replace")


def _start(platform: Platform, name: str) -> tuple[HubUser, str]:
    user = HubUser(platform.url, name)
    assert user.login(PASSWORD).status_code == 200
    user.start_server().raise_for_status()
    user.wait_ready(timeout=180)
    return user, user.new_token()


def _wait_until(predicate, timeout: float, what: str) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.25)
    raise AssertionError(f"timed out waiting for {what}")


WHO = (
    "import os, json; print(json.dumps({'pid': os.getpid(), 'ppid': os.getppid(), "
    "'uid': os.getuid(), 'cgroup': open('/proc/self/cgroup').read(), "
    "'comm': open('/proc/self/comm').read().strip()}))"
)


def test_forked_server_runs_code_survives_hub_restart_and_stops(make_platform) -> None:
    platform: Platform = make_platform(FORKSERVER)
    name = _name("fork")
    _add_user(platform.data_dir, name)
    platform.start()
    user, token = _start(platform, name)

    pid = _server_pid(platform, name)
    try:
        assert "labfleet.spawn.forkserver_main" in _cmdline(pid), "not forked by the fork-server"
        parent = int(_stat(pid)[1])
        assert "labfleet.spawn.forkserver_main" in _cmdline(parent)
        # named so that ps/top (and the chaos invariants) tell it from its children, which
        # keep its command line
        assert Path(f"/proc/{parent}/comm").read_text().strip() == "fork-server"
        assert int(_stat(pid)[3]) == pid, "the server must lead its own session (group kill)"
        assert Path(f"/proc/{pid}/comm").read_text().strip() == "jupyterhub-sing"
        assert "is warm" in _full_log(platform), "the hub never logged a warm fork-server"

        assert user.run_code(token, "print(6*7)").strip() == "42"
        # the kernel is forked from the server's kernel zygote (local.kernel_preload), which
        # is the server's child: same account, same cgroup
        who = json.loads(user.run_code(token, WHO))
        zygote = int(who["ppid"])
        assert Path(f"/proc/{zygote}/comm").read_text().strip() == "kernel-zygote"
        assert who["comm"] == "ipykernel", "a forked kernel is named as one in ps/top"
        assert int(_stat(zygote)[1]) == pid, "the zygote is the server's child"
        # forked with the server from the fork-server's preloaded image, not a new interpreter
        # importing ipykernel on its own: its pages are the fork-server's, shared
        assert _cmdline(zygote) == _cmdline(pid), _cmdline(zygote)
        private, shared = _private_and_shared_kib(zygote)
        assert private < shared, f"zygote: {private} KiB private, {shared} KiB shared"
        assert who["uid"] == Path(f"/proc/{pid}").stat().st_uid
        assert who["cgroup"] == Path(f"/proc/{pid}/cgroup").read_text()
        cwd = user.run_code(token, "import os; print(os.getcwd(), os.environ['HOME'])").split()
        home = str((platform.data_dir / "homes" / name).resolve())
        assert cwd == [home, home]
        assert user.contents_put(token, "kept.txt", "forked").status_code in (200, 201)
        assert (platform.data_dir / "homes" / name / "kept.txt").read_text() == "forked"

        # kill the hub outright: the supervisor restarts it, the server keeps running
        hub_pid = int((platform.data_dir / "state" / "jupyterhub.pid").read_text())
        os.kill(hub_pid, signal.SIGKILL)
        _wait_until(lambda: "restarting it" in _full_log(platform), 60, "the hub to restart")
        _wait_until(lambda: not _alive(parent), 30, "the old fork-server to exit with its hub")
        assert _alive(pid), "a hub restart must not stop a forked server"
        _wait_until(platform._healthy, 90, "the restarted hub")
        again = HubUser(platform.url, name)
        assert again.login(PASSWORD).status_code == 200
        again.wait_ready(timeout=60)
        assert _server_pid(platform, name) == pid
        assert again.run_code(token, "print(7*6)").strip() == "42"

        again.stop_server().raise_for_status()
        again.wait_stopped(timeout=90)
        _wait_until(lambda: not _alive(pid), 30, "the forked server to exit")
        _wait_until(lambda: not _alive(zygote), 30, "the zygote to exit with its server")
        _wait_until(lambda: not _alive(int(who["pid"])), 30, "the kernel to exit")
        user.close()
        again.close()
    finally:
        # the hub was killed on purpose: never leave its server behind if we fail
        if _alive(pid):
            os.killpg(pid, signal.SIGKILL)


def test_forkserver_failure_falls_back_to_exec(make_platform, monkeypatch) -> None:
    # a fork-server that cannot preload exits at once: every launch must use exec instead
    monkeypatch.setenv("LABFLEET_FORKSERVER_PRELOAD", "labfleet_no_such_module_for_tests")
    platform: Platform = make_platform(FORKSERVER)
    name = _name("fall")
    _add_user(platform.data_dir, name)
    platform.start()
    user, token = _start(platform, name)

    pid = _server_pid(platform, name)
    assert "forkserver_main" not in _cmdline(pid)
    assert "jupyterhub-singleuser" in _cmdline(pid), "the fallback is a plain exec"
    log = _full_log(platform)
    assert "fork-server failed" in log and "labfleet_no_such_module_for_tests" in log
    assert user.run_code(token, "print(6*7)").strip() == "42"
    user.stop_server().raise_for_status()
    user.wait_stopped(timeout=90)
    user.close()
