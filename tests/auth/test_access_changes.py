"""The account store's record of access changes, set-password links, home disposal.

These are the parts the CLI and the hub share (plain files, no hub): the
running-hub behaviour is in tests/adversarial/test_access_lifecycle.py.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from labfleet.auth import invites, lifecycle
from labfleet.auth.accounts import ADMIN, LOGOUT, REMOVE, AccountStore, NoSuchAccount
from labfleet.auth.hashing import ScryptParams
from labfleet.auth.home_archive import ARCHIVE_DIR, dispose_home

FAST = ScryptParams(n=2**10)
PASSWORD = "a long enough secret"


@pytest.fixture
def store(tmp_path: Path) -> AccountStore:
    return AccountStore(tmp_path / "accounts.sqlite", FAST)


def actions(store: AccountStore) -> set[tuple[str, str]]:
    return {(c.name, c.action) for c in store.access_changes()}


def test_each_change_is_recorded_with_the_account_change(store: AccountStore) -> None:
    store.add("bob", PASSWORD)
    store.set_password("bob", PASSWORD + "!", end_sessions=False)
    assert actions(store) == set()
    store.set_password("bob", PASSWORD + "?", end_sessions=True)
    store.set_admin("bob", True)
    assert actions(store) == {("bob", LOGOUT), ("bob", ADMIN)}
    store.remove("bob")
    assert actions(store) == {("bob", REMOVE)}  # removal supersedes the rest


def test_applied_keeps_a_change_asked_for_again_meanwhile(store: AccountStore) -> None:
    store.add("bob", PASSWORD)
    store.set_admin("bob", True)
    (first,) = store.access_changes()
    time.sleep(0.01)
    store.set_admin("bob", False)
    store.applied(first)
    assert actions(store) == {("bob", ADMIN)}
    (second,) = store.access_changes()
    store.applied(second)
    assert actions(store) == set()


def test_an_account_without_password_matches_nothing(store: AccountStore) -> None:
    account = store.add("newbie", None)
    assert not account.has_password
    assert store.verify("newbie", "") is None
    assert store.verify("newbie", "!") is None
    assert not store.get("newbie").has_password  # type: ignore[union-attr]


def test_a_link_sets_the_password_once(store: AccountStore) -> None:
    store.add("newbie", None)
    token = invites.create_link_token(store, "newbie")
    assert invites.lookup(store, token).name == "newbie"  # type: ignore[union-attr]
    assert invites.redeem(store, token, PASSWORD) == "newbie"
    assert store.verify("newbie", PASSWORD) is not None
    with pytest.raises(invites.InvalidLink):
        invites.redeem(store, token, "another long secret")
    assert store.verify("newbie", PASSWORD) is not None


def test_links_expire_die_with_a_newer_link_and_with_the_account(store: AccountStore) -> None:
    store.add("newbie", None)
    expired = invites.create_link_token(store, "newbie", ttl=-1)
    assert invites.lookup(store, expired) is None
    with pytest.raises(invites.InvalidLink):
        invites.redeem(store, expired, PASSWORD)
    old = invites.create_link_token(store, "newbie")
    new = invites.create_link_token(store, "newbie")
    assert invites.lookup(store, old) is None
    assert invites.open_invites(store).keys() == {"newbie"}
    store.remove("newbie")
    assert invites.lookup(store, new) is None
    with pytest.raises(NoSuchAccount):
        invites.create_link_token(store, "newbie")


def test_a_link_refuses_a_weak_password_and_stays_usable(store: AccountStore) -> None:
    store.add("newbie", None)
    token = invites.create_link_token(store, "newbie")
    with pytest.raises(invites.AccountError):
        invites.redeem(store, token, "short")
    assert invites.redeem(store, token, PASSWORD) == "newbie"


def test_guessed_tokens_find_nothing(store: AccountStore) -> None:
    store.add("newbie", None)
    invites.create_link_token(store, "newbie")
    assert invites.lookup(store, "") is None
    assert invites.lookup(store, "x" * 43) is None


def test_archived_home_leaves_the_name_free_and_is_private(tmp_path: Path) -> None:
    homes = tmp_path / "homes"
    (homes / "bob").mkdir(parents=True)
    (homes / "bob" / "notes.txt").write_text("old")
    where = dispose_home(homes, "bob")
    assert where is not None and where.parent == homes / ARCHIVE_DIR
    assert (where / "notes.txt").read_text() == "old"
    assert not (homes / "bob").exists()
    assert os.stat(homes / ARCHIVE_DIR).st_mode & 0o777 == 0o700
    (homes / "bob").mkdir()
    second = dispose_home(homes, "bob")
    assert second is not None and second != where
    assert dispose_home(homes, "nobody") is None


def test_delete_home(tmp_path: Path) -> None:
    homes = tmp_path / "homes"
    (homes / "bob" / "deep").mkdir(parents=True)
    assert dispose_home(homes, "bob", "delete") is None
    assert not (homes / "bob").exists()
    assert not (homes / ARCHIVE_DIR).exists()


class UnreachableHub:
    """A hub that answers with an error (what an overloaded or restarting hub does)."""

    def apply_access_changes(self) -> list[str]:
        raise OSError("connection refused")


def test_lifecycle_on_a_stopped_platform_records_for_the_next_start(
    store: AccountStore, tmp_path: Path
) -> None:
    store.add("bob", PASSWORD, admin=True)
    outcome = lifecycle.set_admin(store, "bob", False, hub=None)
    assert not outcome.enforced_now and "not running" in outcome.notes[0]
    outcome = lifecycle.remove_member(store, tmp_path / "homes", "bob", hub=None)
    assert not store.exists("bob")
    assert actions(store) == {("bob", REMOVE)}


def test_a_failed_hub_request_keeps_the_change_and_can_be_retried(
    store: AccountStore, tmp_path: Path
) -> None:
    store.add("bob", PASSWORD)
    with pytest.raises(lifecycle.HubUnreachable):
        lifecycle.remove_member(store, tmp_path / "homes", "bob", hub=UnreachableHub())
    assert actions(store) == {("bob", REMOVE)}
    # running it again retries (the account is already gone)
    outcome = lifecycle.remove_member(store, tmp_path / "homes", "bob", hub=None)
    assert outcome.name == "bob"
    store.applied(store.access_changes()[0])
    with pytest.raises(NoSuchAccount):
        lifecycle.remove_member(store, tmp_path / "homes", "bob", hub=None)


def test_purge_is_called_after_the_removal(store: AccountStore, tmp_path: Path) -> None:
    store.add("bob", PASSWORD)
    calls: list[tuple[Path, str]] = []

    def purge(data_dir: Path, username: str) -> list[str]:
        calls.append((data_dir, username))
        return ["system account lf-bob"]

    outcome = lifecycle.remove_member(
        store, tmp_path / "homes", "bob", hub=None, purge=purge, data_dir=tmp_path
    )
    assert calls == [(tmp_path, "bob")]
    assert "purged system account lf-bob" in outcome.notes
