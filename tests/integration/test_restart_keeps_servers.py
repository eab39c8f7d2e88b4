"""A hub restart loses no server: several running at once all come back, answering (issue 16).

``labfleet reload`` and a crashed hub both end in the same place: the supervisor starts a
new hub process, which must find every running server again (``init_spawners`` checks them
concurrently), keep its process and route, and let its member back in with the same token.
One server is covered by test_failures / test_reload; this one runs several at once, which
is what the restart path does at scale, and checks that none was stopped or re-spawned,
and that the proxy routing them was kept (hub/kept_proxy.py), not replaced.
"""

from __future__ import annotations

import os
import signal
import time

import pytest

from labfleet.spawn.processes import is_alive
from tests.integration.test_embedded_flow import PASSWORD, add_user
from tests.support.client import HubUser
from tests.support.platform import Platform

pytestmark = pytest.mark.integration

MEMBERS = ("rhea", "soren", "tomas")


def _hub_pid(platform: Platform) -> int | None:
    try:
        return int((platform.data_dir / "state" / "jupyterhub.pid").read_text())
    except (OSError, ValueError):
        return None


def _server_pid(platform: Platform, slug: str) -> tuple[int, int]:
    pid, ticks = (platform.data_dir / "state" / "servers" / f"{slug}.pid").read_text().split()
    return int(pid), int(ticks)


#: one page of the hub's user list holds two users here (JupyterHub's ``api_page_max_limit``,
#: 200 by default), so three running servers span two pages as 300 do by default. The
#: supervisor's orphan sweep read only the first page and stopped every server on the
#: others as "left by an interrupted hub" (bench/user_path: 100 of 300 lost at a restart).
SMALL_PAGES = (
    "culling: {enabled: false}\n"
    "hub: {extra_config: {JupyterHub: {api_page_max_limit: 2, api_page_default_limit: 2}}}\n"
)


def test_restarted_hub_keeps_every_running_server_answering(make_platform) -> None:
    platform: Platform = make_platform(SMALL_PAGES)
    platform.start()
    members: dict[str, HubUser] = {}
    try:
        for name in MEMBERS:
            add_user(platform.data_dir, name)
            member = members[name] = HubUser(platform.url, name)
            member.login(PASSWORD).raise_for_status()
            member.start_server().raise_for_status()
        tokens = {}
        for name, member in members.items():
            member.wait_ready()
            tokens[name] = member.new_token()
        processes = {name: _server_pid(platform, name) for name in MEMBERS}
        log_before = len(platform.log())
        proxy_pid = (platform.data_dir / "state" / "proxy.pid").read_text().strip()

        # SIGHUP, as `labfleet reload` sends it: the supervisor kills the hub, starts another
        old_hub = _hub_pid(platform)
        assert platform.proc is not None
        os.kill(platform.proc.pid, signal.SIGHUP)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and _hub_pid(platform) in (None, old_hub):
            time.sleep(0.1)
        assert _hub_pid(platform) not in (None, old_hub), "no new hub after SIGHUP"
        while time.monotonic() < deadline and not platform._healthy():
            time.sleep(0.1)
        assert platform._healthy(), "the new hub never answered /hub/health"

        for name, member in members.items():
            member.wait_ready(timeout=120)
            assert member.server_model().get("ready"), name
            assert _server_pid(platform, name) == processes[name], f"{name} was re-spawned"
            assert is_alive(*processes[name]), f"{name}'s server was stopped"
            # through the proxy, authenticated by the new hub, in a kernel of the same server
            assert member.run_code(tokens[name], "print(6 * 7)").strip() == "42", name
        after = platform.log()[log_before:]
        # the proxy that routes them is the same process: no route or connection was dropped
        assert (platform.data_dir / "state" / "proxy.pid").read_text().strip() == proxy_pid
        assert "Keeping the running proxy" in after
        assert "appears to have stopped while the Hub was down" not in after
        assert "does not appear to be running" not in after
        assert "stopped orphaned server process" not in platform.log()
        # and no caller of the hub's user list (supervisor, dashboard) read just one page
        assert "Truncated user list" not in platform.log()
    finally:
        for member in members.values():
            member.close()
