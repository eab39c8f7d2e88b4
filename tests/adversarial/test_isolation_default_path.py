"""The README path: ``labfleet up`` as root with labfleet in a private venv isolates users.

labfleet here runs from a virtualenv whose interpreter lives under a 0700
``/root`` (pyenv), which system accounts cannot execute. ``isolation: auto``
used to fall back to running every user's server as root; now ``labfleet up``
provisions a world-readable server environment under /opt/labfleet (once per
host, cached: the session fixture below pays it before any platform starts)
and each user's server runs as their own platform-scoped account.
"""

from __future__ import annotations

import pwd
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from labfleet.naming import user_slug
from labfleet.spawn import server_env
from labfleet.spawn.accounts import platform_account, purge_platform
from tests.local.conftest import needs_root, shared_tmp  # noqa: F401
from tests.local.platforms import add_and_login, new_platform, unique_names
from tests.support.client import run_code
from tests.support.platform import Platform

pytestmark = [pytest.mark.integration, pytest.mark.root, needs_root]


@pytest.fixture(scope="module")
def provisioned() -> Path:
    if not server_env.needed():
        pytest.skip("labfleet's own environment is usable by every account here")
    if server_env.default_plan() is None:
        pytest.skip("no system python3 with venv to provision a server environment from")
    path = server_env.ensure_for_up()
    assert path is not None
    return path


@pytest.fixture(scope="module")
def platform(shared_tmp: Path, provisioned: Path) -> Iterator[Platform]:  # noqa: F811
    running = new_platform(  # isolation: auto (the default)
        shared_tmp,
        "culling: {enabled: false}\n"
        "profiles:\n"
        "  - {slug: small, display_name: Small, default: true}\n"
        # labfleet's own private venv (its interpreter is under the 0700 /root)
        f"  - {{slug: private, display_name: Private, environment: {sys.prefix}}}\n",
    )
    running.start()
    yield running
    running.stop()
    purge_platform(running.data_dir)


def test_default_config_as_root_runs_servers_as_their_own_accounts(
    platform: Platform, provisioned: Path
) -> None:
    [name] = unique_names("dora")
    user = add_and_login(platform, name)
    try:
        user.start_server().raise_for_status()
        user.wait_ready(timeout=180)
        token = user.new_token()
        account = pwd.getpwnam(platform_account(platform.data_dir, name))
        pid_file = platform.data_dir / "state" / "servers" / f"{user_slug(name)}.pid"
        pid = pid_file.read_text().split()[0]
        status = Path(f"/proc/{pid}/status").read_text()
        assert f"\nUid:\t{account.pw_uid}\t" in status, platform.log()[-3000:]
        # forked from the fork-server warmed in the provisioned env (not a slow exec)
        assert b"labfleet.spawn.forkserver_main" in Path(f"/proc/{pid}/cmdline").read_bytes()
        out = run_code(user.server_url(), token, "import os, sys; print(os.getuid(), sys.prefix)")
        assert out.split() == [str(account.pw_uid), str(provisioned)]
        user.stop_server().raise_for_status()
        user.wait_stopped(timeout=90)
    except Exception:
        print(platform.log())
        raise
    finally:
        user.close()


def test_auto_refuses_a_server_it_cannot_isolate_instead_of_running_it_as_root(
    platform: Platform,
) -> None:
    [name] = unique_names("eve")
    user = add_and_login(platform, name)
    try:
        refused = user.start_server({"profile": "private"})
        if refused.status_code < 400:  # a slow spawn reports its failure on the server model
            deadline = time.monotonic() + 60
            while user.server_model().get("pending") and time.monotonic() < deadline:
                time.sleep(0.5)
            assert not user.server_model().get("ready"), "started a server it cannot isolate"
        else:
            assert "cannot start its server" in refused.json()["message"], refused.text
            assert "isolation: none" in refused.json()["message"]
        pid_file = platform.data_dir / "state" / "servers" / f"{user_slug(name)}.pid"
        assert not pid_file.exists(), "no server process, as root or otherwise"
    finally:
        user.close()
