"""Removal with real per-user system accounts (as root): ``users remove --purge``.

The member's server runs as their own platform-scoped system account. After
``labfleet users remove NAME --purge`` the account is gone from the machine,
the old token is refused, and when the same name is added again the new
member's kernel can neither see the old files in their home nor open the
archived copy.
"""

from __future__ import annotations

import os
import pwd
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.local.conftest import needs_root, shared_tmp, user_environment  # noqa: F401 - fixtures
from tests.local.platforms import add_and_login, new_platform, unique_names
from tests.support.client import run_code
from tests.support.platform import Platform, labfleet

pytestmark = [pytest.mark.integration, pytest.mark.root, needs_root]


@pytest.fixture(scope="module")
def platform(shared_tmp: Path, user_environment: Path) -> Iterator[Platform]:  # noqa: F811
    running = new_platform(
        shared_tmp,
        (
            "culling: {enabled: false}\n"
            "local: {isolation: system-users}\n"
            "profiles:\n"
            f"  - {{slug: small, display_name: Small, environment: {user_environment}}}\n"
        ),
    )
    running.start()
    yield running
    running.stop()


def test_purge_removes_the_system_account_and_a_readded_name_gets_no_old_files(
    platform: Platform,
) -> None:
    (who,) = unique_names("pam")
    home = platform.data_dir / "homes" / who
    accounts: set[str] = set()
    try:
        user = add_and_login(platform, who)
        token = user.new_token()
        user.start_server().raise_for_status()
        user.wait_ready()
        assert user.contents_put(token, "diary.txt", "old secrets").status_code in (200, 201)
        account = pwd.getpwuid(os.stat(home).st_uid)
        accounts.add(account.pw_name)
        assert account.pw_uid != 0

        removed = labfleet("users", "remove", who, "--purge", data_dir=platform.data_dir)
        assert removed.returncode == 0, removed.stdout + removed.stderr
        assert f"purged system account {account.pw_name}" in removed.stdout
        with pytest.raises(KeyError):
            pwd.getpwnam(account.pw_name)
        assert user.contents_get(token, "diary.txt").status_code != 200
        (archived,) = (platform.data_dir / "homes" / ".removed").glob(f"{who}.removed-*")

        again = add_and_login(platform, who)
        new_token = again.new_token()
        again.start_server().raise_for_status()
        again.wait_ready()
        accounts.add(pwd.getpwuid(os.stat(home).st_uid).pw_name)
        assert again.contents_get(new_token, "diary.txt").status_code == 404
        code = (
            "import os\n"
            f"try:\n    print(open({str(archived / 'diary.txt')!r}).read())\n"
            "except PermissionError:\n    print('refused')\n"
        )
        assert run_code(again.server_url(), new_token, code).strip() == "refused"
        assert with_token_status(platform, token) in (401, 403)
    finally:
        labfleet("users", "remove", who, "--purge", "--delete-home", data_dir=platform.data_dir)
        for name in accounts:
            with pytest.raises(KeyError):
                pwd.getpwnam(name)


def with_token_status(platform: Platform, token: str) -> int:
    import httpx

    return httpx.get(
        f"{platform.url}/hub/api/user", headers={"Authorization": f"token {token}"}, timeout=30
    ).status_code
