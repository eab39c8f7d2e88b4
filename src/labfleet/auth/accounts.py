"""Password accounts of the embedded default, in one SQLite file of the data directory.

The hub (through :class:`labfleet.auth.password.PasswordAuthenticator`) and
``labfleet users ...`` open the same file, so accounts can be managed while
the hub runs. Only scrypt hashes are stored; the file is created 0600 in a
0700 directory. Every name goes through
:func:`labfleet.usernames.normalize_username` first, so ``Alice`` and
``alice`` are one account.
"""

from __future__ import annotations

import builtins
import contextlib
import os
import sqlite3
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from labfleet.auth.hashing import (
    DEFAULT_PARAMS,
    MAX_PASSWORD,
    ScryptParams,
    dummy_hash,
    generate_password,
    hash_password,
    needs_rehash,
    verify_password,
)
from labfleet.usernames import InvalidUsername, canonical_username, normalize_username

INITIAL_ADMIN = "admin"
DEFAULT_MIN_LENGTH = 8

#: password_hash of an account whose member has not set a password yet (matches nothing)
NO_PASSWORD = "!"  # noqa: S105 - a marker, not a secret

_SCHEMA = (
    """
CREATE TABLE IF NOT EXISTS accounts (
    name TEXT PRIMARY KEY NOT NULL,
    password_hash TEXT NOT NULL,
    admin INTEGER NOT NULL DEFAULT 0,
    created REAL NOT NULL,
    updated REAL NOT NULL
)
""",
    # Access changes the running hub must enforce (see labfleet.auth.hub_access): written in
    # the same transaction as the account change, removed once the hub has applied them, and
    # applied at the next hub start when the platform was not running.
    """
CREATE TABLE IF NOT EXISTS access_changes (
    name TEXT NOT NULL,
    action TEXT NOT NULL,
    created REAL NOT NULL,
    PRIMARY KEY (name, action)
)
""",
)

#: a removed account: the hub user goes (servers stopped, sessions and tokens revoked)
REMOVE = "remove"
#: sessions end: servers stopped, tokens revoked, browser cookies invalidated
LOGOUT = "logout"
#: the hub's admin role follows the account's admin flag
ADMIN = "admin"


class AccountError(ValueError):
    """A refused account operation; the message is safe to print."""


class AccountExists(AccountError):
    pass


class NoSuchAccount(AccountError):
    pass


class WeakPassword(AccountError):
    pass


@dataclass(frozen=True)
class Account:
    """What callers may see of an account (never the hash)."""

    name: str
    admin: bool
    created: float
    updated: float
    #: False for a member added without a password who has not set one yet
    has_password: bool = True


@dataclass(frozen=True)
class AccessChange:
    name: str
    action: str
    created: float


def check_password_policy(password: str, name: str, min_length: int) -> None:
    """Refuse passwords that are short, huge, control-laden or equal to the name."""
    if len(password) < min_length:
        raise WeakPassword(f"the password must have at least {min_length} characters")
    if len(password) > MAX_PASSWORD:
        raise WeakPassword(f"the password must have at most {MAX_PASSWORD} characters")
    if any(ord(ch) < 32 or ord(ch) == 127 for ch in password):
        raise WeakPassword("the password contains control characters")
    if canonical_username(password) == name:
        raise WeakPassword("the password must not be the username")


def _create_private_file(path: Path) -> None:
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd = os.open(path, os.O_CREAT | os.O_RDWR, 0o600)
    os.close(fd)
    os.chmod(path, 0o600)


class AccountStore:
    """Accounts in SQLite at ``path``; safe to use from several processes and threads."""

    def __init__(self, path: Path | str, params: ScryptParams = DEFAULT_PARAMS) -> None:
        self.path = Path(path)
        self.params = params
        self._dummy: str | None = None

    # -- plumbing -------------------------------------------------------------

    @contextlib.contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        if not self.path.exists():
            _create_private_file(self.path)
        conn = sqlite3.connect(self.path, timeout=30, isolation_level=None)
        try:
            for statement in _SCHEMA:
                conn.execute(statement)
            yield conn
        finally:
            conn.close()

    @contextlib.contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """One ``BEGIN IMMEDIATE`` transaction on the store (other tables of the file share it)."""
        with self._transaction() as conn:
            yield conn

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        with self._connect() as conn:
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
            except BaseException:
                if conn.in_transaction:  # SQLite may have ended it (a full disk does)
                    conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")

    @staticmethod
    def _account(row: tuple[Any, ...]) -> Account:
        has_password = len(row) < 5 or row[4] != NO_PASSWORD
        return Account(
            name=row[0],
            admin=bool(row[1]),
            created=row[2],
            updated=row[3],
            has_password=has_password,
        )

    # -- queries --------------------------------------------------------------

    def get(self, name: str) -> Account | None:
        try:
            key = normalize_username(name)
        except InvalidUsername:
            return None
        with self._connect() as conn:
            row = conn.execute(
                "SELECT name, admin, created, updated, password_hash FROM accounts WHERE name = ?",
                (key,),
            ).fetchone()
        return None if row is None else self._account(row)

    def exists(self, name: str) -> bool:
        return self.get(name) is not None

    def list(self) -> builtins.list[Account]:
        with self._connect() as conn:
            rows = conn.execute(
                "SELECT name, admin, created, updated, password_hash FROM accounts ORDER BY name"
            ).fetchall()
        return [self._account(row) for row in rows]

    def count(self) -> int:
        with self._connect() as conn:
            (count,) = conn.execute("SELECT COUNT(*) FROM accounts").fetchone()
        return int(count)

    # -- changes --------------------------------------------------------------

    def add(
        self,
        name: str,
        password: str | None,
        admin: bool = False,
        min_length: int = DEFAULT_MIN_LENGTH,
    ) -> Account:
        """Create an account; ``password=None`` makes one the member completes with a
        set-password link (:mod:`labfleet.auth.invites`)."""
        key = normalize_username(name)
        if password is None:
            encoded = NO_PASSWORD
        else:
            check_password_policy(password, key, min_length)
            encoded = hash_password(password, self.params)
        now = time.time()
        with self._transaction() as conn:
            if conn.execute("SELECT 1 FROM accounts WHERE name = ?", (key,)).fetchone():
                raise AccountExists(f"account {key!r} already exists")
            conn.execute(
                "INSERT INTO accounts VALUES (?, ?, ?, ?, ?)", (key, encoded, int(admin), now, now)
            )
        return Account(
            name=key, admin=admin, created=now, updated=now, has_password=password is not None
        )

    def add_first(self, name: str, password: str, admin: bool = True) -> bool:
        """Add ``name`` only if the store is empty (atomic); True when it was added."""
        key = normalize_username(name)
        encoded = hash_password(password, self.params)
        now = time.time()
        with self._transaction() as conn:
            (count,) = conn.execute("SELECT COUNT(*) FROM accounts").fetchone()
            if count:
                return False
            conn.execute(
                "INSERT INTO accounts VALUES (?, ?, ?, ?, ?)", (key, encoded, int(admin), now, now)
            )
        return True

    def remove(self, name: str, record: bool = True) -> None:
        """Delete the account and (``record``) ask the hub to remove its hub user.

        Set-password links of the name die with it (same transaction).
        """
        key = normalize_username(name)
        with self._transaction() as conn:
            cursor = conn.execute("DELETE FROM accounts WHERE name = ?", (key,))
            if cursor.rowcount == 0:
                raise NoSuchAccount(f"no account {key!r}")
            with contextlib.suppress(sqlite3.OperationalError):  # no invites table yet
                conn.execute("DELETE FROM invites WHERE name = ?", (key,))
            if record:
                conn.execute("DELETE FROM access_changes WHERE name = ?", (key,))
                _record(conn, key, REMOVE)

    def set_password(
        self,
        name: str,
        password: str,
        min_length: int = DEFAULT_MIN_LENGTH,
        end_sessions: bool = False,
    ) -> None:
        """New password; ``end_sessions`` also asks the hub to end every session and token."""
        key = normalize_username(name)
        check_password_policy(password, key, min_length)
        self._store_hash(key, hash_password(password, self.params), end_sessions)

    def clear_password(self, name: str, end_sessions: bool = True) -> None:
        """The old password stops working; the member sets a new one with a link."""
        self._store_hash(normalize_username(name), NO_PASSWORD, end_sessions)

    def _store_hash(self, key: str, encoded: str, end_sessions: bool = False) -> None:
        with self._transaction() as conn:
            cursor = conn.execute(
                "UPDATE accounts SET password_hash = ?, updated = ? WHERE name = ?",
                (encoded, time.time(), key),
            )
            if cursor.rowcount == 0:
                raise NoSuchAccount(f"no account {key!r}")
            if end_sessions:
                _record(conn, key, LOGOUT)

    def set_admin(self, name: str, admin: bool, record: bool = True) -> None:
        """Grant or revoke admin rights; ``record`` asks the hub to apply it at once."""
        key = normalize_username(name)
        with self._transaction() as conn:
            cursor = conn.execute(
                "UPDATE accounts SET admin = ?, updated = ? WHERE name = ?",
                (int(admin), time.time(), key),
            )
            if cursor.rowcount == 0:
                raise NoSuchAccount(f"no account {key!r}")
            if record:
                _record(conn, key, ADMIN)

    # -- access changes for the hub ---------------------------------------------

    def access_changes(self) -> builtins.list[AccessChange]:
        """Changes the hub has not applied yet, oldest first."""
        with self._connect() as conn:
            rows = conn.execute(
                "SELECT name, action, created FROM access_changes ORDER BY created"
            ).fetchall()
        return [AccessChange(name=row[0], action=row[1], created=row[2]) for row in rows]

    def applied(self, change: AccessChange) -> None:
        """Forget ``change`` unless the same change was asked for again meanwhile."""
        with self._transaction() as conn:
            conn.execute(
                "DELETE FROM access_changes WHERE name = ? AND action = ? AND created <= ?",
                (change.name, change.action, change.created),
            )

    # -- login ----------------------------------------------------------------

    def _dummy_hash(self) -> str:
        if self._dummy is None:
            self._dummy = dummy_hash(self.params)
        return self._dummy

    def verify(self, name: str, password: str) -> Account | None:
        """The account when ``password`` is right, else None.

        An unknown or invalid name costs the same scrypt work as a known one,
        so response time does not reveal which accounts exist. A hash made
        with weaker parameters than the store's is upgraded on success.
        """
        if not isinstance(name, str) or not isinstance(password, str):
            return None
        dummy = self._dummy_hash()  # made on first use, whichever name comes first
        try:
            key: str | None = normalize_username(name)
        except InvalidUsername:
            key = None
        row = None
        if key is not None:
            with self._connect() as conn:
                row = conn.execute(
                    "SELECT name, admin, created, updated, password_hash FROM accounts "
                    "WHERE name = ?",
                    (key,),
                ).fetchone()
        encoded = row[4] if row is not None else dummy
        try:
            matched = verify_password(password, encoded)
        except ValueError:
            verify_password(password, dummy)
            matched = False
        if row is None or not matched:
            return None
        if needs_rehash(encoded, self.params):
            with contextlib.suppress(AccountError):
                self._store_hash(row[0], hash_password(password, self.params))
        return self._account((row[0], row[1], row[2], row[3]))


def _record(conn: sqlite3.Connection, key: str, action: str) -> None:
    conn.execute(
        "INSERT OR REPLACE INTO access_changes VALUES (?, ?, ?)", (key, action, time.time())
    )


def ensure_initial_admin(store: AccountStore) -> str | None:
    """Create ``admin`` with a generated password if the store has no accounts.

    Returns the password (to be shown once) or None when accounts already exist.
    """
    if store.count():
        return None
    password = generate_password()
    if store.add_first(INITIAL_ADMIN, password, admin=True):
        return password
    return None
