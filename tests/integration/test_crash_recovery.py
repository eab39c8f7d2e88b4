"""Crash-only posture of `labfleet up`: each test reproduces one bug of issue 11
on a real platform (real hub, proxy, servers) and checks the converged state."""

from __future__ import annotations

import os
import signal
import sqlite3
import sys
import time
from pathlib import Path

import httpx
import pytest

from labfleet.spawn.processes import is_alive, start_ticks
from tests.integration.test_embedded_flow import PASSWORD, add_user
from tests.support.client import HubUser
from tests.support.platform import Platform

pytestmark = pytest.mark.integration


def _hub_pid(data_dir: Path) -> int:
    return int((data_dir / "state" / "jupyterhub.pid").read_text())


def _wait_for(check, timeout: float = 90, what: str = "condition") -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.25)
    raise AssertionError(f"timed out waiting for {what}")


def test_hub_killed_before_saving_state_leaves_no_orphan(open_data_dir, make_platform) -> None:
    """The hub dies after launching a server but before saving its pid: the
    restarted hub polls a spawner without a pid. That poll used to delete the
    pid file, hiding the live server from the orphan sweep for good."""
    platform: Platform = make_platform("culling: {enabled: false}\n", open_data_dir)
    platform.start()
    assert platform.proc is not None
    add_user(platform.data_dir, "olga")
    olga = HubUser(platform.url, "olga")
    olga.login(PASSWORD)
    olga.start_server().raise_for_status()
    olga.wait_ready()
    pid_file = platform.data_dir / "state" / "servers" / "olga.pid"
    pid, ticks = (int(v) for v in pid_file.read_text().split())

    # freeze the supervisor so the hub stays down while we make the DB look like
    # "killed between launch and saving state" (server row present, no pid saved)
    os.kill(platform.proc.pid, signal.SIGSTOP)
    try:
        old_hub = _hub_pid(platform.data_dir)
        os.kill(old_hub, signal.SIGKILL)
        _wait_for(lambda: not is_alive(old_hub), 30, "the hub to die")
        with sqlite3.connect(platform.data_dir / "jupyterhub.sqlite") as db:
            db.execute("UPDATE spawners SET state = '{}' WHERE name = ''")
    finally:
        os.kill(platform.proc.pid, signal.SIGCONT)

    _wait_for(lambda: not is_alive(pid, ticks), 90, "the unrecorded server to be stopped")
    # the sweep removes the pid file once it saw the server gone (its next 50 ms look):
    # under load that is after our look, so wait for it too, boundedly
    _wait_for(lambda: not pid_file.exists(), 30, "the orphan's pid file to be removed")
    # and olga can start again and run code
    olga.close()
    _wait_for(platform._healthy, 90, "the restarted hub")
    olga = HubUser(platform.url, "olga")
    olga.login(PASSWORD)
    _wait_for(lambda: olga.start_server().status_code in (201, 202), 60, "a new start")
    olga.wait_ready(timeout=90)
    token = olga.new_token()
    assert olga.run_code(token, "print(6*7)").strip() == "42"
    olga.close()


def test_second_up_refuses_and_restart_after_supervisor_kill_stops_the_old_hub(
    open_data_dir, make_platform
) -> None:
    """No single-instance guard used to let a second `labfleet up` (or one started
    after the supervisor was SIGKILLed) print "up" on the old hub's health and
    crash-loop on EADDRINUSE, leaving the old hub unsupervised."""
    first: Platform = make_platform("culling: {enabled: false}\n", open_data_dir)
    first.start()
    assert first.proc is not None

    second: Platform = make_platform("culling: {enabled: false}\n", open_data_dir)
    with pytest.raises(RuntimeError) as refused:
        second.start(timeout=60)
    assert "already running" in str(refused.value)
    assert f"pid {first.proc.pid}" in str(refused.value)

    old_hub = _hub_pid(open_data_dir)
    os.kill(first.proc.pid, signal.SIGKILL)  # the supervisor dies; its hub lives on
    first.proc.wait()
    assert is_alive(old_hub)

    third: Platform = make_platform("culling: {enabled: false}\n", open_data_dir)
    third.start()
    assert f"stopped the hub (pid {old_hub})" in third.log()
    assert not is_alive(old_hub)
    assert _hub_pid(open_data_dir) != old_hub
    add_user(open_data_dir, "pia")
    pia = HubUser(third.url, "pia")
    pia.login(PASSWORD)
    pia.start_server().raise_for_status()
    pia.wait_ready()
    assert pia.run_code(pia.new_token(), "print(6*7)").strip() == "42"
    pia.close()


def _children(pid: int) -> dict[int, str]:
    found: dict[int, str] = {}
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            status = (proc / "status").read_text()
            cmd = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        ppid = next(int(line.split()[1]) for line in status.splitlines() if line.startswith("PPid"))
        if ppid == pid:
            found[int(proc.name)] = cmd
    return found


def test_services_die_with_a_killed_hub(open_data_dir, make_platform) -> None:
    """Every hub crash used to leak a culler (and the dashboard) that kept running
    with a valid token and stale settings."""
    platform: Platform = make_platform("culling: {enabled: true}\n", open_data_dir)
    platform.start()
    hub = _hub_pid(open_data_dir)
    services = {
        pid: cmd
        for pid, cmd in _children(hub).items()
        if "idle_culler" in cmd or "labfleet.services" in cmd
    }
    assert any("idle_culler" in cmd for cmd in services.values()), _children(hub)
    ticks = {pid: start_ticks(pid) for pid in services}
    tokens = {pid: _service_token(pid) for pid in services}
    for token in tokens.values():
        assert _token_valid(platform, token)
    os.kill(hub, signal.SIGKILL)
    _wait_for(
        lambda: not any(is_alive(pid, ticks[pid]) for pid in services),
        30,
        f"the services {services} to die with their hub",
    )
    _wait_for(platform._healthy, 90, "the restarted hub")
    # their startup-generated tokens died with them (they used to stay valid forever)
    for pid, token in tokens.items():
        assert not _token_valid(platform, token), f"{services[pid]} left a valid token"


def _service_token(pid: int) -> str:
    environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    found = [v.split(b"=", 1)[1] for v in environ if v.startswith(b"JUPYTERHUB_API_TOKEN=")]
    assert found, f"no token in the environment of {pid}"
    return found[0].decode()


def _token_valid(platform: Platform, token: str) -> bool:
    answer = httpx.get(
        f"{platform.url}/hub/api/user", headers={"Authorization": f"token {token}"}, timeout=10
    )
    return answer.status_code == 200


def _group_pids(data_dir: Path, slug: str) -> set[int]:
    """Processes in the server's control group, every mounted hierarchy (the ground truth)."""
    from labfleet.hub.settings import cgroup_parent_for
    from labfleet.spawn.limits.base import read_pids
    from labfleet.spawn.limits.platform import parent_dirs

    dirs = parent_dirs(cgroup_parent_for(data_dir))
    return set(read_pids(d / slug / "cgroup.procs" for d in dirs))


def test_server_known_only_to_its_cgroup_is_stopped(open_data_dir, make_platform) -> None:
    """A hub killed between launch and any record of the server (no pid file, no
    saved pid, for one user not even a server row) used to leave it running for
    good, counted against the user's limits: only its cgroup knew it. The
    restarted hub (its poll, for a server row without a pid) and the supervisor's
    sweep (for no row at all) now take the cgroup as the ground truth."""
    from labfleet.spawn.limits.detect import probe

    if probe("auto", "labfleet-probe").backend is None:
        pytest.skip("no cgroup limits backend on this machine")
    platform: Platform = make_platform("culling: {enabled: false}\n", open_data_dir)
    platform.start()
    assert platform.proc is not None
    servers = {}
    for name in ("uma", "vic"):
        add_user(platform.data_dir, name)
        member = HubUser(platform.url, name)
        member.login(PASSWORD)
        member.start_server().raise_for_status()
        member.wait_ready(timeout=180)
        member.close()
        pid_file = platform.data_dir / "state" / "servers" / f"{name}.pid"
        pid, ticks = (int(v) for v in pid_file.read_text().split())
        assert pid in _group_pids(platform.data_dir, name)
        servers[name] = (pid, ticks, pid_file)

    os.kill(platform.proc.pid, signal.SIGSTOP)  # keep the hub down while we rewrite history
    try:
        old_hub = _hub_pid(platform.data_dir)
        os.kill(old_hub, signal.SIGKILL)
        _wait_for(lambda: not is_alive(old_hub), 30, "the hub to die")
        for _pid, _ticks, pid_file in servers.values():
            pid_file.unlink()
        with sqlite3.connect(platform.data_dir / "jupyterhub.sqlite") as db:
            ids = dict(db.execute("SELECT name, id FROM users WHERE name IN ('uma', 'vic')"))
            # uma: a server row without a saved pid; vic: not even the row
            db.execute("UPDATE spawners SET state = '{}' WHERE user_id = ?", (ids["uma"],))
            row = db.execute("SELECT server_id FROM spawners WHERE user_id = ?", (ids["vic"],))
            (server_id,) = row.fetchone()
            db.execute(
                "UPDATE spawners SET state = '{}', server_id = NULL WHERE user_id = ?",
                (ids["vic"],),
            )
            db.execute("DELETE FROM servers WHERE id = ?", (server_id,))
    finally:
        os.kill(platform.proc.pid, signal.SIGCONT)

    for name, (pid, ticks, _file) in servers.items():
        _wait_for(lambda p=pid, t=ticks: not is_alive(p, t), 90, f"{name}'s unrecorded server")
        _wait_for(lambda n=name: not _group_pids(platform.data_dir, n), 30, f"{name}'s cgroup")
    _wait_for(platform._healthy, 90, "the restarted hub")
    vic = HubUser(platform.url, "vic")
    vic.login(PASSWORD)
    _wait_for(lambda: vic.start_server().status_code in (201, 202), 60, "a new start")
    vic.wait_ready(timeout=90)
    assert vic.run_code(vic.new_token(), "print(6*7)").strip() == "42"
    vic.close()


def test_a_server_records_its_own_pid_before_it_runs(tmp_path: Path) -> None:
    """The pid file is written by the new process between fork and exec, so no
    instant exists at which a launched server has no record (the hub used to
    write it after the launch returned: a hub killed in between left none)."""
    from labfleet.spawn.launch import ExecLauncher, LaunchSpec
    from labfleet.spawn.processes import read_pid_record, record_pid_hook

    record = tmp_path / "servers" / "wren.pid"
    marker = tmp_path / "seen"
    # the command itself reports whether its record was already there when it began
    script = f"import os; open({str(marker)!r}, 'w').write(str(os.path.exists({str(record)!r})))"
    spec = LaunchSpec(
        argv=[sys.executable, "-c", script + "; import time; time.sleep(30)"],
        env={"PATH": os.defpath},
        cwd=tmp_path,
        log_path=tmp_path / "wren.log",
        pre_exec=(record_pid_hook(record),),
    )
    pid = ExecLauncher().launch(spec)
    try:
        _wait_for(marker.exists, 30, "the command to start")
        assert marker.read_text() == "True"
        assert read_pid_record(record) == (pid, start_ticks(pid))
    finally:
        os.killpg(pid, signal.SIGKILL)
        _wait_for(lambda: not is_alive(pid), 30, "the test process to end")


def test_orphan_sweep_never_stops_a_server_started_while_it_asks_the_hub(tmp_path: Path) -> None:
    """The sweep used to ask the hub first and read the pid files after: a member
    who started their server in between lost it to the sweep. It now stops only
    what it saw before asking, and leaves the new record in place."""
    import subprocess

    from labfleet.spawn.processes import read_pid_record, write_pid_record
    from labfleet.up.orphans import sweep

    def sleeper() -> subprocess.Popen[bytes]:
        return subprocess.Popen(["sleep", "60"], start_new_session=True)

    record = tmp_path / "xia.pid"
    old = sleeper()
    write_pid_record(record, old.pid, start_ticks(old.pid) or 0)
    new: list[subprocess.Popen[bytes]] = []

    def hub_knows_nothing_yet() -> set[str]:
        new.append(sleeper())  # xia starts a new server while the hub is asked
        write_pid_record(record, new[0].pid, start_ticks(new[0].pid) or 0)
        return set()

    try:
        assert sweep(tmp_path, [], hub_knows_nothing_yet, grace=5) == ["xia"]
        old.wait(timeout=10)
        assert new[0].poll() is None, "the sweep stopped a server started after its snapshot"
        assert read_pid_record(record) == (new[0].pid, start_ticks(new[0].pid))
    finally:
        for proc in [old, *new]:
            proc.kill()
            proc.wait()
