"""SIGKILL each component of a running platform at a random instant of a spawn,
a stop or a login, LABFLEET_CHAOS_COUNT times per component (default 1 in a
plain run; ``LABFLEET_CHAOS_COUNT=20 pytest -m chaos tests/chaos`` for the long
run), then wait for the platform to converge and check every invariant of
``invariants.Watch``: one hub, one proxy, services and fork-servers only of the
live hub, no server process the hub does not know (pid files and cgroups), no
valid token of a dead service; the round's member starts again and runs code;
both databases pass PRAGMA integrity_check. The seed and round are in every
failure message (LABFLEET_CHAOS_SEED reruns one).

One platform serves the whole suite (``conftest.chaos_platform``).
"""

from __future__ import annotations

import contextlib
import os
import random
import signal
import threading
import time
from collections.abc import Callable

import httpx
import pytest

from labfleet.spawn.forkserver_main import PROCESS_NAME as FORKSERVER_NAME
from labfleet.spawn.processes import is_alive, read_pid_record
from tests.chaos import invariants
from tests.chaos.conftest import MEMBERS
from tests.integration.test_embedded_flow import PASSWORD
from tests.support.client import HubUser
from tests.support.platform import Platform

pytestmark = [pytest.mark.integration, pytest.mark.chaos]

COUNT = int(os.environ.get("LABFLEET_CHAOS_COUNT", "1"))
SEED = int(os.environ.get("LABFLEET_CHAOS_SEED", "11"))
ACTIONS = ("spawn", "stop", "login")


@pytest.fixture
def platform(chaos_platform: Platform) -> Platform:
    return chaos_platform


def _wait(check: Callable[[], list[str]], timeout: float, note: str) -> None:
    deadline = time.monotonic() + timeout
    problems = ["not checked yet"]
    while time.monotonic() < deadline:
        try:
            problems = check()
        except Exception as exc:  # a component still down: look again
            problems = [f"{type(exc).__name__}: {exc}"]
        if not problems:
            return
        time.sleep(0.5)
    raise AssertionError(f"{note}: not converged after {timeout:.0f} s: {problems}")


def _member(platform: Platform, name: str) -> HubUser:
    member = HubUser(platform.url, name)
    _wait(lambda: [] if member.login(PASSWORD).status_code < 400 else ["login"], 120, name)
    return member


def _logs(platform: Platform, name: str) -> str:
    """The ends of the hub's and the member's server logs, for a failure message."""
    tails = []
    logs = platform.data_dir / "logs"
    with contextlib.suppress(OSError):
        hub = (logs / "hub.log").read_text(errors="replace").splitlines()
        polls = (f"200 GET /hub/api/users/{name} ", "xsrf")  # the test's own waiting
        lines = [line for line in hub if name in line and not any(p in line for p in polls)]
        tails.append("--- hub.log (lines naming the member):\n" + "\n".join(lines[-60:]))
    with contextlib.suppress(OSError):
        server = (logs / "servers" / f"{name}.log").read_text(errors="replace")
        tails.append(f"--- {name}.log:\n" + server[-3000:])
    return "\n".join(tails)


def _start_until_ready(member: HubUser, timeout: float) -> None:
    """Start the member's server and wait until the hub marks it ready, starting
    again (as a member would) whenever no start is pending.

    A start can end without a server: one killed after it said it serves but
    before the hub's own HTTP check succeeded is found only when JupyterHub gives
    up on that check (``servers.http_timeout``, 60 s), and the spawn fails. The
    member then starts again; waiting on the failed start alone never ends.
    """
    deadline = time.monotonic() + timeout
    starts = 0
    while time.monotonic() < deadline:
        try:
            model = member.server_model()
            if model.get("ready"):
                if starts > 1:
                    print(f"{member.name}: ready after {starts} starts")  # the long run's log
                return
            if not model:  # no server and no start pending
                starts += member.start_server().status_code < 500
        except httpx.HTTPError:  # the hub or the proxy still coming back
            pass
        time.sleep(0.25)
    raise TimeoutError(f"server of {member.name} not ready after {timeout:.0f} s, {starts} starts")


def _ensure(platform: Platform, name: str, running: bool) -> None:
    """Bring the member's server to the state the action needs."""
    member = _member(platform, name)
    try:
        if running:
            _start_until_ready(member, timeout=240)
        else:
            member.stop_server()
            member.wait_stopped(timeout=120)
    except TimeoutError as exc:
        raise AssertionError(f"{exc}\n{_logs(platform, name)}") from exc
    finally:
        member.close()


def _act(platform: Platform, name: str, action: str) -> threading.Thread:
    """Start the action in the background (the kill lands somewhere inside it)."""

    def run() -> None:
        member = HubUser(platform.url, name)
        try:
            if action == "login":
                member.login(PASSWORD)
                return
            member.login(PASSWORD)
            (member.start_server if action == "spawn" else member.stop_server)()
        except Exception:  # noqa: S110 - the kill may cut any request off
            pass
        finally:
            member.close()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def _victim(platform: Platform, component: str, name: str, within: float) -> int | None:
    """The pid to kill now (for a user's server: the first one seen within ``within`` s)."""
    data_dir = platform.data_dir
    if component == "supervisor":
        assert platform.proc is not None
        return platform.proc.pid
    if component == "hub":
        return invariants.hub_pid(data_dir)
    if component == "proxy":
        return invariants.proxy_pid(data_dir)
    if component == "server":  # once it exists (a spawn launches it), ``within`` s later
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            entry = read_pid_record(data_dir / "state" / "servers" / f"{name}.pid")
            if entry is not None and is_alive(*entry):
                time.sleep(within)
                return entry[0]
            time.sleep(0.01)
        return None
    hub = invariants.hub_pid(data_dir)
    if hub is None:
        return None
    children = invariants.children(hub, invariants.processes())
    if component == "culler":
        found = [p.pid for p in children if "idle_culler" in p.cmd]
    else:  # by name: its children (servers, kernel zygotes) carry its command line
        found = [p.pid for p in children if p.comm == FORKSERVER_NAME]
    return found[0] if found else None


def _restart_supervisor(platform: Platform, round_note: str) -> None:
    """A new `labfleet up` after its predecessor was SIGKILLed (it stops the old hub)."""
    assert platform.proc is not None
    platform.proc.wait(timeout=30)
    platform.log_path = platform.data_dir.parent / f"up-{time.monotonic_ns()}.log"
    platform.start(timeout=180)
    assert "is up at" in platform.log(), round_note


COMPONENTS = ["hub", "proxy", "culler", "forkserver", "server", "supervisor"]


def _action(component: str, round_: int) -> str:
    """Round after round: spawn, stop, login. A plain run (one or two kills) starts each
    component at another action, so it still kills something during all three (the hub
    during a spawn, as ``test_kill_hub_mid_spawn`` does in the long run)."""
    offset = COMPONENTS.index(component) if len(ACTIONS) > COUNT else 0
    return ACTIONS[(round_ + offset) % len(ACTIONS)]


@pytest.mark.timeout(300 * (COUNT + 1))  # each round's waits are bounded; the long run's too
@pytest.mark.parametrize("component", COMPONENTS)
def test_kill_component(platform: Platform, component: str) -> None:
    rng = random.Random(f"{SEED}-{component}")
    watch = invariants.Watch(platform)
    for round_ in range(COUNT):
        name = rng.choice(MEMBERS)
        action = _action(component, round_)
        delay = rng.uniform(0.0, 0.6)
        note = (
            f"LABFLEET_CHAOS_SEED={SEED} component {component}, round {round_}: "
            f"SIGKILL {delay:.3f} s into {name}'s {action}"
        )
        began = time.monotonic()
        try:
            _round(platform, component, name, action, delay, watch, note)
        except AssertionError as exc:
            raise AssertionError(f"{note}: {exc}") from exc
        print(f"{note}: converged, {time.monotonic() - began:.1f} s")  # the long run's log
    assert not invariants.integrity_problems(platform.data_dir), f"seed {SEED}, {component}"


def _round(
    platform: Platform,
    component: str,
    name: str,
    action: str,
    delay: float,
    watch: invariants.Watch,
    note: str,
) -> None:
    """One kill: prepare, act, kill, then wait for convergence and use the server."""
    # a server to kill during a login must run already; a spawn starts from nothing
    needs_server = action == "stop" or (component, action) == ("server", "login")
    _ensure(platform, name, running=needs_server)
    watch.note()
    thread = _act(platform, name, action)
    time.sleep(delay if component != "server" else 0)
    victim = _victim(platform, component, name, within=delay)
    if victim is not None:
        with contextlib.suppress(ProcessLookupError):  # it ended on its own (a stop)
            os.kill(victim, signal.SIGKILL)
    thread.join(timeout=60)
    if component == "supervisor":
        _restart_supervisor(platform, note)
    _wait(watch.problems, 180, note)
    # the member starts again (or still runs) and runs code
    _ensure(platform, name, running=True)
    member = _member(platform, name)
    try:
        assert member.run_code(member.new_token(), "print(6*7)").strip() == "42", note
    finally:
        member.close()
    watch.note()
    _wait(watch.problems, 60, f"{note} (after the new start)")
