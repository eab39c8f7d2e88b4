"""The kernel zygote in a server the real platform spawned (issue 16).

``labfleet up`` with the fork-server, a member's server as their own account
in its cgroup: the member's first kernel is forked from the server's zygote
(same uid and cgroup as the server), and stopping the server leaves neither.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.integration.test_forkserver import (
    FORKSERVER,
    _add_user,
    _alive,
    _cmdline,
    _name,
    _server_pid,
    _start,
    _stat,
    _wait_until,
)
from tests.support.platform import Platform

pytestmark = pytest.mark.integration

WHO = (
    "import os, json; print(json.dumps({'pid': os.getpid(), 'ppid': os.getppid(), "
    "'uid': os.getuid(), 'cgroup': open('/proc/self/cgroup').read()}))"
)


def test_a_members_kernel_is_forked_from_their_servers_zygote(make_platform) -> None:  # type: ignore[no-untyped-def]
    platform: Platform = make_platform(FORKSERVER)
    name = _name("zyg")
    _add_user(platform.data_dir, name)
    platform.start()
    user, token = _start(platform, name)
    server = _server_pid(platform, name)

    who = json.loads(user.run_code(token, WHO))
    zygote = int(who["ppid"])
    assert "kernel_zygote_main" in _cmdline(zygote), _cmdline(zygote)
    assert int(_stat(zygote)[1]) == server, "the zygote is the server's child"
    assert who["uid"] == Path(f"/proc/{server}").stat().st_uid
    assert who["cgroup"] == Path(f"/proc/{server}/cgroup").read_text()

    user.stop_server().raise_for_status()
    user.wait_stopped(timeout=90)
    _wait_until(lambda: not _alive(zygote), 30, "the zygote to exit with its server")
    _wait_until(lambda: not _alive(int(who["pid"])), 30, "the kernel to exit")
    user.close()
