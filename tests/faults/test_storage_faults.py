"""Disk full, read-only data dir, locked database: every surface names the cause (issue 11).

Real ``labfleet up`` on a real tmpfs; real logins, spawns and CLI commands. After
each fault is lifted the same member logs in and starts a server with nothing
restarted, and both databases pass ``PRAGMA integrity_check``.
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Iterator

import pytest

from tests.cli.conftest import PASSWORD
from tests.faults.conftest import SmallDisk, integrity
from tests.support.client import HubUser
from tests.support.platform import Platform, labfleet


@pytest.fixture
def member(platform: Platform) -> Iterator[HubUser]:
    user = HubUser(platform.url, "dana")
    assert user.login(PASSWORD).status_code == 200
    yield user
    with contextlib.suppress(Exception):
        user.stop_server()
        user.wait_stopped()
    user.close()


def assert_recovered(platform: Platform, spawn: bool = True) -> None:
    """A fresh login (and a spawn) work with nothing restarted; both databases are intact."""
    again = HubUser(platform.url, "dana")
    try:
        page = again.login(PASSWORD)
        assert page.status_code == 200 and "/hub/home" in str(page.url), page.text[-2000:]
        if spawn:
            assert_starts(platform, again)
    finally:
        again.close()
    for db in ("jupyterhub.sqlite", "accounts.sqlite"):
        assert integrity(platform.data_dir / db) == "ok", db


def assert_starts(platform: Platform, user: HubUser) -> None:
    started = user.start_server()
    assert started.status_code in (201, 202), started.text
    try:
        user.wait_ready(timeout=60)
    except TimeoutError as exc:
        log = [ln for ln in platform.log().splitlines() if "/hub/api/users/dana" not in ln]
        raise AssertionError(f"{exc}; hub log:\n" + "\n".join(log[-80:])) from exc
    assert user.stop_server().status_code in (202, 204)
    user.wait_stopped()


def assert_says(text: str, *words: str) -> None:
    lowered = text.lower()
    for word in words:
        assert word in lowered, f"{word!r} not in:\n{text[-3000:]}"


def test_a_full_disk_is_named_on_every_surface_and_passes(
    platform: Platform, small_disk: SmallDisk, member: HubUser
) -> None:
    hub_pid = (platform.data_dir / "state" / "jupyterhub.pid").read_text()
    small_disk.fill()
    try:
        # erin has an account but has never logged in: the hub must write a new user
        login = HubUser(platform.url, "erin")
        page = login.login(PASSWORD)
        login.close()
        assert page.status_code in (200, 507), page.text[-3000:]
        if page.status_code == 507:  # a login whose writes do not fit says why
            assert_says(page.text, "disk holding", "is full")

        spawn = member.start_server()
        assert spawn.status_code == 507, spawn.text
        assert_says(spawn.json()["message"], "disk holding", "is full", "nothing was changed")

        web = member.http.get("/hub/spawn/dana")
        assert web.status_code == 507, "\n".join(platform.log().splitlines()[-60:])
        assert_says(web.text, "is full")

        cli = labfleet(
            "users",
            "add",
            "eve",
            "--password-stdin",
            input=PASSWORD + "\n",
            data_dir=platform.data_dir,
        )
        assert cli.returncode != 0
        assert "Traceback" not in cli.stderr, cli.stderr
        assert_says(cli.stderr, "is full", str(platform.data_dir).lower())

        status = labfleet("status", data_dir=platform.data_dir)
        assert_says(status.stdout, "low disk space", "0 bytes free")
        assert "LOW DISK SPACE" in platform.log(), "the start-up banner warns (64 MiB < 1 GiB)"
    finally:
        small_disk.free()
    assert_recovered(platform)
    assert (platform.data_dir / "state" / "jupyterhub.pid").read_text() == hub_pid, "no restart"


def test_a_read_only_data_dir_is_named_and_passes(idle_disk: SmallDisk) -> None:
    """The CLI on a data dir whose disk went read-only names it, and works once it is back.

    Only the CLI: Linux refuses to remount a file system read-only while a
    program (the hub, holding its database) has files open for writing, and an
    ext4 forced read-only by an error cannot be made writable again without a
    remount the kernel refuses too. The hub's pages use the same words
    (``storage_errors.explain``) as for a full disk, which is tested above.
    """
    data = idle_disk.mount / "data"
    add = ("users", "add", "eve", "--password-stdin")
    assert labfleet(*add, input=PASSWORD + "\n", data_dir=data).returncode == 0
    idle_disk.remount("ro")
    try:
        cli = labfleet(
            "users", "add", "finn", "--password-stdin", input=PASSWORD + "\n", data_dir=data
        )
        assert cli.returncode != 0
        assert "Traceback" not in cli.stderr, cli.stderr
        assert_says(cli.stderr, "read-only", str(data).lower())
    finally:
        idle_disk.remount("rw")
    again = labfleet(
        "users", "add", "finn", "--password-stdin", input=PASSWORD + "\n", data_dir=data
    )
    assert again.returncode == 0, again.stderr
    assert integrity(data / "accounts.sqlite") == "ok"


def test_a_locked_database_is_named_and_passes(platform: Platform, member: HubUser) -> None:
    """The hub's pages; the CLI's words for a lock are checked in ``test_classify`` (it
    waits 30 s for a lock before it answers, too long to wait for here)."""
    holder = sqlite3.connect(platform.data_dir / "jupyterhub.sqlite", isolation_level=None)
    try:
        holder.execute("BEGIN EXCLUSIVE")
        spawn = member.start_server()
        assert spawn.status_code == 503, spawn.text
        assert_says(spawn.json()["message"], "lock")
    finally:
        holder.rollback()
        holder.close()
    assert_recovered(platform, spawn=False)  # a spawn after a lifted fault: tested above


def test_admins_see_a_low_disk_banner_on_hub_pages(platform: Platform) -> None:
    """The tmpfs (64 MiB) is below the default ``local.min_free_space`` (1 GiB)."""
    seen = {}
    for name in ("ada", "dana"):
        user = HubUser(platform.url, name)
        try:
            assert user.login(PASSWORD).status_code == 200
            seen[name] = user.http.get("/hub/home").text
        finally:
            user.close()
    assert "LOW DISK SPACE" in seen["ada"] and str(platform.data_dir) in seen["ada"]
    assert "LOW DISK SPACE" not in seen["dana"], "members are not shown the data dir's disk"
