"""AccountStore on a real SQLite file: normalised names, hashes only, 0600, initial admin."""

from __future__ import annotations

import sqlite3
import stat
import threading
from pathlib import Path

import pytest

from labfleet.auth.accounts import (
    AccountExists,
    AccountStore,
    NoSuchAccount,
    WeakPassword,
    ensure_initial_admin,
)
from labfleet.auth.hashing import ScryptParams, verify_password
from labfleet.usernames import InvalidUsername

FAST = ScryptParams(n=2**10)


@pytest.fixture
def store(tmp_path: Path) -> AccountStore:
    return AccountStore(tmp_path / "data" / "accounts.sqlite", FAST)


def test_file_is_private(store: AccountStore) -> None:
    store.add("alice", "password-1")
    assert stat.S_IMODE(store.path.stat().st_mode) == 0o600
    assert stat.S_IMODE(store.path.parent.stat().st_mode) == 0o700


def test_only_hashes_are_stored(store: AccountStore) -> None:
    store.add("alice", "password-1")
    raw = store.path.read_bytes()
    assert b"password-1" not in raw
    with sqlite3.connect(store.path) as conn:
        (encoded,) = conn.execute("SELECT password_hash FROM accounts").fetchone()
    assert encoded.startswith("scrypt$")
    assert verify_password("password-1", encoded)


def test_names_are_normalised_everywhere(store: AccountStore) -> None:
    store.add("Alice ", "password-1", admin=True)
    assert [a.name for a in store.list()] == ["alice"]
    assert store.verify("ALICE", "password-1") is not None
    assert store.get("alice") is not None
    with pytest.raises(AccountExists):
        store.add("alice", "password-2")


def test_verify(store: AccountStore) -> None:
    store.add("bob", "password-1")
    account = store.verify("bob", "password-1")
    assert account is not None and account.name == "bob" and not account.admin
    assert store.verify("bob", "password-2") is None
    assert store.verify("nobody", "password-1") is None
    assert store.verify("../x", "password-1") is None
    assert store.verify("bob", None) is None  # type: ignore[arg-type]


@pytest.mark.parametrize("name", ["../x", "-rf", "a\nb", "a/b", "x" * 200])
def test_hostile_names_are_refused_before_storage(store: AccountStore, name: str) -> None:
    with pytest.raises(InvalidUsername):
        store.add(name, "password-1")
    assert store.count() == 0


@pytest.mark.parametrize("password", ["short", "bob", "x" * 2000, "pass\nword!"])
def test_weak_passwords_are_refused(store: AccountStore, password: str) -> None:
    with pytest.raises(WeakPassword):
        store.add("bob", password, min_length=8)


def test_password_and_admin_changes(store: AccountStore) -> None:
    store.add("bob", "password-1")
    store.set_password("bob", "password-2")
    assert store.verify("bob", "password-1") is None
    assert store.verify("bob", "password-2") is not None
    store.set_admin("BOB", True)
    assert store.get("bob").admin  # type: ignore[union-attr]
    store.remove("bob")
    assert store.get("bob") is None
    for change in (
        lambda: store.remove("bob"),
        lambda: store.set_admin("bob", False),
        lambda: store.set_password("bob", "password-3"),
    ):
        with pytest.raises(NoSuchAccount):
            change()


def test_weaker_hash_is_upgraded_on_login(tmp_path: Path) -> None:
    path = tmp_path / "accounts.sqlite"
    AccountStore(path, ScryptParams(n=2**8)).add("bob", "password-1")
    stronger = AccountStore(path, ScryptParams(n=2**11))
    assert stronger.verify("bob", "password-1") is not None
    with sqlite3.connect(path) as conn:
        (encoded,) = conn.execute("SELECT password_hash FROM accounts").fetchone()
    assert encoded.startswith("scrypt$2048$")


def test_corrupt_hash_fails_closed(store: AccountStore) -> None:
    store.add("bob", "password-1")
    with sqlite3.connect(store.path) as conn:
        conn.execute("UPDATE accounts SET password_hash = 'garbage'")
    assert store.verify("bob", "password-1") is None


def test_initial_admin_once(store: AccountStore) -> None:
    password = ensure_initial_admin(store)
    assert password is not None and len(password) >= 24
    admin = store.verify("admin", password)
    assert admin is not None and admin.admin
    assert ensure_initial_admin(store) is None
    assert store.count() == 1


def test_initial_admin_is_skipped_when_accounts_exist(store: AccountStore) -> None:
    store.add("bob", "password-1")
    assert ensure_initial_admin(store) is None
    assert store.get("admin") is None


def test_concurrent_first_start_creates_one_admin(tmp_path: Path) -> None:
    path = tmp_path / "accounts.sqlite"
    results: list[str | None] = []

    def first_start() -> None:
        results.append(ensure_initial_admin(AccountStore(path, FAST)))

    threads = [threading.Thread(target=first_start) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sum(result is not None for result in results) == 1
    assert AccountStore(path, FAST).count() == 1


def test_the_real_error_survives_a_transaction_sqlite_already_ended(store: AccountStore) -> None:
    """Issue 11: a full disk made SQLite end the transaction itself; our ROLLBACK then
    raised "cannot rollback - no transaction is active" and hid "database or disk is full"."""
    store.add("ann", "password-1")
    with pytest.raises(sqlite3.OperationalError, match="database or disk is full"):  # noqa: SIM117
        with store._transaction() as conn:
            conn.execute("ROLLBACK")  # what SQLite does on SQLITE_FULL
            raise sqlite3.OperationalError("database or disk is full")
    assert store.verify("ann", "password-1")
