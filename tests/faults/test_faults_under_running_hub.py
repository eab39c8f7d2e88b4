"""A data dir that goes read-only, or a database someone locks, under a *running* hub (issue 11).

The data dir is on ``fault_fs`` (a FUSE passthrough over a real directory that can be
told to answer EROFS for every change, including writes to files the hub opened
long before), because the kernel will not remount a real disk read-only while the
hub holds its database open. Real ``labfleet up``, real logins, spawns and CLI
commands; after the fault is lifted the same platform (same hub pid) lets people log
in and start servers, and both databases pass ``PRAGMA integrity_check``.
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from tests.cli.conftest import PASSWORD
from tests.faults.conftest import FaultDisk
from tests.faults.test_storage_faults import assert_recovered, assert_says
from tests.support.client import HubUser
from tests.support.platform import Platform, labfleet


@pytest.fixture
def member(faulty_platform: Platform) -> Iterator[HubUser]:
    user = HubUser(faulty_platform.url, "dana")
    assert user.login(PASSWORD).status_code == 200
    yield user
    with contextlib.suppress(Exception):
        user.stop_server()
        user.wait_stopped()
    user.close()


def _log_tail(platform: Platform, lines: int = 60) -> str:
    return "hub log:\n" + "\n".join(platform.log().splitlines()[-lines:])


def _hub_pid(platform: Platform) -> str:
    return (platform.data_dir / "state" / "jupyterhub.pid").read_text()


def test_a_data_dir_gone_read_only_is_named_on_every_surface_and_passes(
    faulty_platform: Platform, fault_disk: FaultDisk, member: HubUser
) -> None:
    platform = faulty_platform
    hub_pid = _hub_pid(platform)
    fault_disk.set("ro")
    try:
        login = HubUser(platform.url, "erin")  # never logged in: the hub must add her
        page = login.login(PASSWORD)
        login.close()
        assert page.status_code in (200, 503), _log_tail(platform)
        if page.status_code == 503:
            assert_says(page.text, "read-only")

        spawn = member.start_server()
        assert spawn.status_code == 503, spawn.text
        assert_says(spawn.json()["message"], "read-only", "nothing was changed")

        web = member.http.get("/hub/spawn/dana")
        assert web.status_code == 503, web.text[-3000:]
        assert_says(web.text, "read-only")

        add = ("users", "add", "eve", "--password-stdin")
        cli = labfleet(*add, input=PASSWORD + "\n", data_dir=platform.data_dir)
        assert cli.returncode != 0
        assert "Traceback" not in cli.stderr, cli.stderr
        assert_says(cli.stderr, "read-only", str(platform.data_dir).lower())

        status = labfleet("status", data_dir=platform.data_dir)
        assert "Traceback" not in status.stderr, status.stderr
        assert_says(status.stdout + status.stderr, "read-only")
    finally:
        fault_disk.set("rw")
    assert_recovered(platform)
    assert _hub_pid(platform) == hub_pid, "no restart"
    again = labfleet(
        "users", "add", "eve", "--password-stdin", input=PASSWORD + "\n", data_dir=platform.data_dir
    )
    assert again.returncode == 0, again.stderr


def test_a_locked_accounts_database_is_named_on_the_web_and_the_cli_and_passes(
    faulty_platform: Platform,
) -> None:
    """Another program holds ``BEGIN EXCLUSIVE`` on accounts.sqlite (a backup, a ``sqlite3``
    shell): a login and ``labfleet users add`` wait for it (30 s), then name the lock; both
    work once it is released. The two run side by side, so the test waits once."""
    platform = faulty_platform
    holder = sqlite3.connect(platform.data_dir / "accounts.sqlite", isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")
    try:
        add = ("users", "add", "gus", "--password-stdin")
        with ThreadPoolExecutor(1) as pool:
            cli_done = pool.submit(
                labfleet, *add, input=PASSWORD + "\n", data_dir=platform.data_dir
            )
            login = HubUser(platform.url, "dana")
            login.http.timeout = httpx.Timeout(120)
            try:
                page = login.login(PASSWORD)
            finally:
                login.close()
            cli = cli_done.result()
        assert page.status_code == 503, _log_tail(platform)
        assert_says(page.text, "lock")
        assert cli.returncode != 0
        assert "Traceback" not in cli.stderr, cli.stderr
        assert_says(cli.stderr, "lock")
    finally:
        holder.rollback()
        holder.close()
    assert_recovered(platform, spawn=False)
    again = labfleet(*add, input=PASSWORD + "\n", data_dir=platform.data_dir)
    assert again.returncode == 0, again.stderr


def test_a_locked_hub_database_is_named_on_the_web_page_and_passes(
    faulty_platform: Platform, member: HubUser
) -> None:
    """The API's words for a locked hub DB are checked in ``test_storage_faults``; a page too."""
    holder = sqlite3.connect(faulty_platform.data_dir / "jupyterhub.sqlite", isolation_level=None)
    try:
        holder.execute("BEGIN EXCLUSIVE")
        web = member.http.get("/hub/spawn/dana")
        assert web.status_code == 503, _log_tail(faulty_platform)
        assert_says(web.text, "lock")
    finally:
        holder.rollback()
        holder.close()
    assert_recovered(faulty_platform, spawn=False)
