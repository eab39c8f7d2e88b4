"""The embedded platform end to end, with real processes (issue 2).

`labfleet up` → account created with the CLI → form login with XSRF → server
started through the REST API → code run in a kernel over the websocket →
files survive a server restart and a platform restart → idle culling.
"""

from __future__ import annotations

import json
import os
import sqlite3
import time
from pathlib import Path

import pytest

from tests.support.client import HubUser
from tests.support.members import Member, add_member
from tests.support.platform import Platform, labfleet

pytestmark = pytest.mark.integration

PASSWORD = "correct horse battery staple"


def add_user(data_dir: Path, name: str, admin: bool = False) -> None:
    add_member(data_dir, Member(name, PASSWORD, admin))


def _journal_mode(db: Path) -> str:
    conn = sqlite3.connect(db, timeout=30)
    try:
        return str(conn.execute("PRAGMA journal_mode").fetchone()[0])
    finally:
        conn.close()


def test_login_spawn_run_code_persist_and_resume(make_platform) -> None:
    platform: Platform = make_platform("culling: {enabled: false}\n")
    platform.start()
    assert platform.admin_password(), "first start must print the generated admin password"
    # commits append to a write-ahead log instead of syncing a journal and the file each time
    assert _journal_mode(platform.data_dir / "jupyterhub.sqlite") == "wal"
    add_user(platform.data_dir, "alice")  # the CLI works on the data dir of a running hub

    alice = HubUser(platform.url, "alice")
    denied = alice.login("wrong password")
    assert "/hub/login" in str(denied.url) and denied.status_code == 403
    page = alice.login(PASSWORD)
    assert page.status_code == 200 and "/hub/login" not in str(page.url)

    alice.start_server().raise_for_status()
    alice.wait_ready()
    token = alice.new_token()
    assert alice.run_code(token, "print(6*7)").strip() == "42"

    assert alice.contents_put(token, "notes.txt", "kept across restarts").status_code in (200, 201)
    home = platform.data_dir / "homes" / "alice"
    assert (home / "notes.txt").read_text() == "kept across restarts"
    assert oct(home.stat().st_mode & 0o777) == "0o700"

    # restart the server: the file is still there
    alice.stop_server()
    alice.wait_stopped()
    alice.start_server().raise_for_status()
    alice.wait_ready()
    assert alice.contents_get(token, "notes.txt").json()["content"] == "kept across restarts"

    # Ctrl-C stops everything cleanly; the next start resumes alice's server
    pid = json.loads(_server_state(platform))["pid"]
    assert platform.stop() == 0
    assert not _alive(pid), "servers must be stopped with the platform"
    platform.start()
    alice2 = HubUser(platform.url, "alice")
    alice2.login(PASSWORD)
    alice2.wait_ready(timeout=60)
    assert alice2.contents_get(token, "notes.txt").status_code == 200
    alice.close()
    alice2.close()


def _server_state(platform: Platform) -> str:
    pid_file = platform.data_dir / "state" / "servers" / "alice.pid"
    pid, ticks = pid_file.read_text().split()
    return json.dumps({"pid": int(pid), "ticks": int(ticks)})


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return Path(f"/proc/{pid}/stat").read_text().split(") ")[1][0] != "Z"


def test_idle_culler_stops_idle_server(make_platform) -> None:
    platform: Platform = make_platform("culling: {timeout: 3s, every: 1s}\n")
    add_user(platform.data_dir, "bob")
    platform.start()
    bob = HubUser(platform.url, "bob")
    bob.login(PASSWORD)
    bob.start_server().raise_for_status()
    bob.wait_ready()
    started = time.monotonic()
    bob.wait_stopped(timeout=90)  # nobody touches it: the culler must stop it
    assert time.monotonic() - started >= 2
    bob.close()


def test_users_cli_round_trip(tmp_path: Path) -> None:
    data = tmp_path / "data"
    add_user(data, "carol", admin=True)
    listing = labfleet("users", "list", data_dir=data)
    assert listing.returncode == 0 and "carol" in listing.stdout
    bad = labfleet("users", "add", "-rf", "--password-stdin", input=PASSWORD, data_dir=data)
    assert bad.returncode == 2
    assert labfleet("users", "remove", "carol", data_dir=data).returncode == 0
    assert "carol" not in labfleet("users", "list", data_dir=data).stdout
