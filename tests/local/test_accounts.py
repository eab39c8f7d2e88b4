"""System accounts: hostile names are refused before useradd runs; ours are reused, others not."""

from __future__ import annotations

import pwd
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from labfleet.naming import system_account, user_slug
from labfleet.spawn.accounts import (
    MARKER,
    AccountRefused,
    account_name,
    cgroup_parent_of,
    check_existing,
    ensure_account,
    platform_account,
    platform_marker,
    platform_tag,
    purge_local_user,
    purge_platform,
    refusal_reason,
    resolve_isolation,
    useradd_argv,
)
from tests.local.conftest import needs_root

HOSTILE = ["-rf", "--uid=0", "root", "a b", "a\nb", "", "../x", "a/b", "x" * 200, "ALICE"]


def _no_passwd(name: str) -> pwd.struct_passwd:
    raise KeyError(name)


def _entry(name: str, uid: int, gecos: str, gid: int | None = None) -> pwd.struct_passwd:
    return pwd.struct_passwd((name, "x", uid, uid if gid is None else gid, gecos, "/h", "/bin/sh"))


@pytest.mark.parametrize("name", HOSTILE)
def test_hostile_names_are_refused_before_any_command(name: str) -> None:
    assert refusal_reason(name, _no_passwd, first_uid=1000) is not None
    ran: list[list[str]] = []

    def run(argv: list[str]) -> subprocess.CompletedProcess[str]:
        ran.append(argv)
        return subprocess.CompletedProcess(argv, 0, "", "")

    with pytest.raises(AccountRefused):
        ensure_account(name, Path("/srv/homes/x"), lookup=_no_passwd, run=run)
    assert ran == [], "a refused name must never reach useradd"


def test_system_account_names_are_refused() -> None:
    def lookup(name: str) -> pwd.struct_passwd:
        if name == "backup":
            return _entry("backup", 34, "backup")
        raise KeyError(name)

    assert "system account" in (refusal_reason("backup", lookup, first_uid=1000) or "")
    assert refusal_reason("alice", lookup, first_uid=1000) is None
    assert refusal_reason("alice@example.org", lookup, first_uid=1000) is None


def test_useradd_gets_a_prefixed_name_after_double_dash() -> None:
    argv = useradd_argv(system_account("alice"), Path("/data/homes/alice"))
    assert argv[-2:] == ["--", "lf-alice"]
    assert "--comment" in argv and MARKER in argv
    for bad in ("root", "-rf", "lf-a b", "lf-" + "a" * 40):
        with pytest.raises(AccountRefused):
            useradd_argv(bad, Path("/h"))
    with pytest.raises(AccountRefused):
        useradd_argv("lf-alice", Path("/h:/bin/sh"))


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        (_entry("lf-x", 0, MARKER), "privileged"),
        (_entry("lf-x", 1500, MARKER, gid=0), "privileged"),
        (_entry("lf-x", 999, MARKER), "system account"),
        (_entry("lf-x", 1500, "Somebody Else"), "not created by labfleet"),
    ],
)
def test_existing_accounts_are_reused_only_when_ours(
    entry: pwd.struct_passwd, message: str
) -> None:
    with pytest.raises(AccountRefused, match=message):
        check_existing(entry, first_uid=1000)
    check_existing(_entry("lf-x", 1500, MARKER), first_uid=1000)


def test_isolation_modes() -> None:
    assert resolve_isolation("auto", root=True) is True
    assert resolve_isolation("auto", root=False) is False
    assert resolve_isolation("auto", root=True, blocker="/root is 0700") is True  # refuses
    assert resolve_isolation("none", root=True) is False
    assert resolve_isolation("system-users", root=True, blocker="x") is True
    with pytest.raises(RuntimeError, match="not running as root"):
        resolve_isolation("system-users", root=False)


@pytest.fixture
def username() -> Iterator[str]:
    name = f"acct-{uuid.uuid4().hex[:6]}"
    yield name
    subprocess.run(["userdel", "--", system_account(name)], capture_output=True, check=False)


@pytest.mark.root
@needs_root
def test_real_account_is_created_once_and_reused(username: str, tmp_path: Path) -> None:
    first = ensure_account(username, tmp_path / "home")
    entry = pwd.getpwnam(system_account(username))
    assert (first.name, first.uid) == (entry.pw_name, entry.pw_uid)
    assert first.uid >= 1000 and first.gid != 0
    assert entry.pw_gecos == MARKER and entry.pw_dir == str(tmp_path / "home")
    assert ensure_account(username, tmp_path / "home") == first


@pytest.mark.root
@needs_root
def test_foreign_account_with_our_name_is_not_taken_over(username: str, tmp_path: Path) -> None:
    account = system_account(username)
    subprocess.run(
        ["useradd", "--no-create-home", "--comment", "a person", "--", account], check=True
    )
    with pytest.raises(AccountRefused, match="not created by labfleet"):
        ensure_account(username, tmp_path / "home")


# --- accounts scoped to a platform (one data directory) ------------------------------
def test_account_names_are_scoped_to_the_platform_and_fit_useradd() -> None:
    one, two = Path("/srv/labfleet-one/data"), Path("/srv/labfleet-two/data")
    assert platform_account(one, "alice") != platform_account(two, "alice")
    assert platform_account(one, "alice").endswith("-alice")
    for name in ("alice", "x" * 120, "alice.smith@example.org"):
        account = platform_account(one, name)
        assert len(account) <= 32
        assert refusal_reason(name, _no_passwd, first_uid=1000, tag=platform_tag(one)) is None
    argv = useradd_argv(platform_account(one, "alice"), Path("/h"), platform_tag(one))
    assert argv[argv.index("--comment") + 1] == platform_marker(platform_tag(one))


def test_another_platforms_account_is_not_reused() -> None:
    tag = platform_tag(Path("/srv/a/data"))
    entry = _entry(account_name("alice", tag), 1500, platform_marker("0" * 8))
    with pytest.raises(AccountRefused, match="another labfleet platform"):
        check_existing(entry, 1000, tag)
    check_existing(_entry(entry.pw_name, 1500, platform_marker(tag)), 1000, tag)


@pytest.mark.root
@needs_root
def test_two_platforms_get_two_uids_and_purge_removes_only_its_own(tmp_path: Path) -> None:
    """One name on two platforms: two uids; ``purge_local_user`` removes one, with its groups."""
    name = f"twin-{uuid.uuid4().hex[:6]}"
    one, two = tmp_path / "one", tmp_path / "two"
    try:
        first = ensure_account(name, tmp_path / "h1", data_dir=one)
        second = ensure_account(name, tmp_path / "h2", data_dir=two)
        assert first.uid != second.uid and first.name != second.name
        groups = [m / cgroup_parent_of(one) / user_slug(name) for m in _v1_mounts()]
        for group in groups:
            group.mkdir(parents=True)
        removed = purge_local_user(one, name)
        assert f"system account {first.name} (uid {first.uid})" in removed
        assert all(f"control group {g}" in removed for g in groups)
        assert not any(g.exists() for g in groups)
        with pytest.raises(KeyError):
            pwd.getpwnam(first.name)
        assert pwd.getpwnam(second.name).pw_uid == second.uid, "the other platform keeps its own"
        assert purge_local_user(one, name) == []
        assert purge_platform(two) == [f"system account {second.name} (uid {second.uid})"]
    finally:
        for data_dir in (one, two):
            purge_platform(data_dir)
    assert not [e for e in pwd.getpwall() if e.pw_name in (first.name, second.name)]


def _v1_mounts() -> list[Path]:
    return [p for p in (Path("/sys/fs/cgroup/memory"), Path("/sys/fs/cgroup/pids")) if p.is_dir()]
