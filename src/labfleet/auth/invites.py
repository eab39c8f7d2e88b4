"""One-time set-password links: how a member added in the browser gets a password.

An admin adds a member (``/hub/accounts`` or JupyterHub's admin page) or
resets one; the account then has no usable password and the admin gets a link
``/hub/set-password/<token>`` to hand over. The link works once, expires
(``ttl`` seconds, three days by default) and is stored only as a SHA-256 hash
in the accounts file, so a copy of that file does not let anyone in. Making a
new link for a member kills the previous one. Redeeming sets the password in
the same transaction that burns the link, so two tabs cannot both use it.
"""

from __future__ import annotations

import contextlib
import hashlib
import secrets
import sqlite3
import time
from dataclasses import dataclass

from labfleet.auth.accounts import (
    DEFAULT_MIN_LENGTH,
    AccountError,
    AccountStore,
    NoSuchAccount,
    check_password_policy,
)
from labfleet.auth.hashing import hash_password
from labfleet.usernames import normalize_username

DEFAULT_TTL = 3 * 24 * 3600
_TOKEN_BYTES = 32

_SCHEMA = """
CREATE TABLE IF NOT EXISTS invites (
    token_hash TEXT PRIMARY KEY NOT NULL,
    name TEXT NOT NULL,
    expires REAL NOT NULL
)
"""


class InvalidLink(AccountError):
    """An unknown, used or expired link (one message for all three: it reveals nothing)."""

    def __init__(self) -> None:
        super().__init__("this link is not valid any more; ask an admin for a new one")


@dataclass(frozen=True)
class Invite:
    name: str
    expires: float


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "replace")).hexdigest()


def _ensure_table(conn: sqlite3.Connection) -> None:
    conn.execute(_SCHEMA)


def create_link_token(store: AccountStore, name: str, ttl: float = DEFAULT_TTL) -> str:
    """A fresh single-use token for ``name`` (any older one is revoked)."""
    key = normalize_username(name)
    token = secrets.token_urlsafe(_TOKEN_BYTES)
    with store.transaction() as conn:
        _ensure_table(conn)
        if conn.execute("SELECT 1 FROM accounts WHERE name = ?", (key,)).fetchone() is None:
            raise NoSuchAccount(f"no account {key!r}")
        conn.execute("DELETE FROM invites WHERE name = ?", (key,))
        conn.execute(
            "INSERT INTO invites VALUES (?, ?, ?)", (_digest(token), key, time.time() + ttl)
        )
    return token


def lookup(store: AccountStore, token: str) -> Invite | None:
    """The live invite behind ``token``, or None."""
    with store.transaction() as conn:
        _ensure_table(conn)
        row = conn.execute(
            "SELECT name, expires FROM invites WHERE token_hash = ?", (_digest(token),)
        ).fetchone()
    if row is None or row[1] <= time.time():
        return None
    return Invite(name=row[0], expires=row[1])


def redeem(
    store: AccountStore, token: str, password: str, min_length: int = DEFAULT_MIN_LENGTH
) -> str:
    """Set the password of the link's member and burn the link; returns the member's name."""
    invite = lookup(store, token)
    if invite is None:
        raise InvalidLink
    check_password_policy(password, invite.name, min_length)
    encoded = hash_password(password, store.params)
    with store.transaction() as conn:
        burned = conn.execute(
            "DELETE FROM invites WHERE token_hash = ? AND expires > ?",
            (_digest(token), time.time()),
        )
        if burned.rowcount != 1:
            raise InvalidLink
        updated = conn.execute(
            "UPDATE accounts SET password_hash = ?, updated = ? WHERE name = ?",
            (encoded, time.time(), invite.name),
        )
        if updated.rowcount != 1:
            raise InvalidLink
    return invite.name


def open_invites(store: AccountStore) -> dict[str, float]:
    """{member: expiry} of live links (for the accounts page)."""
    with contextlib.suppress(sqlite3.OperationalError), store.transaction() as conn:
        _ensure_table(conn)
        conn.execute("DELETE FROM invites WHERE expires <= ?", (time.time(),))
        rows = conn.execute("SELECT name, expires FROM invites").fetchall()
        return {row[0]: row[1] for row in rows}
    return {}
