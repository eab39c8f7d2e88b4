"""A fork-server child is as isolated as an exec'd server (real platform, as root).

With ``isolation: system-users`` and a memory limit, a server forked from the
fork-server must run as its user's system account, inside its own control
group (the pre-exec hook ran in the child), with the user's home as cwd and
HOME — exactly what ``ExecLauncher`` produces.
"""

from __future__ import annotations

import pwd
from collections.abc import Iterator
from pathlib import Path

import pytest

from labfleet.naming import server_slug, user_slug
from labfleet.spawn.accounts import platform_account
from tests.local.conftest import needs_root, shared_tmp, user_environment  # noqa: F401
from tests.local.platforms import add_and_login, new_platform, remove_accounts, unique_names
from tests.support.client import run_code
from tests.support.platform import Platform

pytestmark = [pytest.mark.integration, pytest.mark.root, needs_root]


@pytest.fixture
def platform(shared_tmp: Path, user_environment: Path) -> Iterator[Platform]:  # noqa: F811
    running = new_platform(
        shared_tmp,
        (
            "culling: {enabled: false}\n"
            "local: {isolation: system-users}\n"
            "hub: {extra_config: {LocalSpawner: {launcher_kind: forkserver}}}\n"
            "profiles:\n"
            "  - {slug: small, display_name: Small, memory: 400M,\n"
            f"      environment: {user_environment}}}\n"
        ),
    )
    running.start()
    yield running
    running.stop()


def test_forked_server_runs_as_the_user_inside_its_cgroup(platform: Platform) -> None:
    [name] = unique_names("forky")
    user = add_and_login(platform, name)
    try:
        user.start_server().raise_for_status()
        user.wait_ready(timeout=180)
        token = user.new_token()
        slug = server_slug(name, "")
        pid = int((platform.data_dir / "state" / "servers" / f"{slug}.pid").read_text().split()[0])
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        assert b"labfleet.spawn.forkserver_main" in cmdline, platform.log()

        account = pwd.getpwnam(platform_account(platform.data_dir, name))
        status = Path(f"/proc/{pid}/status").read_text()
        assert f"\nUid:\t{account.pw_uid}\t{account.pw_uid}\t{account.pw_uid}" in status
        assert f"\nGid:\t{account.pw_gid}\t{account.pw_gid}\t{account.pw_gid}" in status
        groups = status.split("\nGroups:", 1)[1].split("\n", 1)[0].split()
        assert groups == [], "supplementary groups must be dropped"
        cgroups = Path(f"/proc/{pid}/cgroup").read_text()
        assert f"/{slug}\n" in cgroups, f"the cgroup join hook did not run in the child: {cgroups}"

        home = str(platform.data_dir / "homes" / user_slug(name))
        code = "import os; print(os.getuid(), os.getcwd(), os.environ['HOME'])"
        out = run_code(user.server_url(), token, code)
        assert out.split() == [str(account.pw_uid), home, home]
        user.stop_server().raise_for_status()
        user.wait_stopped(timeout=90)
    except Exception:
        logs = platform.data_dir / "logs" / "servers"
        for log in logs.glob("*.log"):
            print(f"--- {log.name}\n{log.read_text(errors='replace')[-4000:]}")
        print(platform.log())
        raise
    finally:
        user.close()
        platform.stop()
        remove_accounts([name], platform.data_dir)
