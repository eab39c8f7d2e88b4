"""The embedded default: JupyterHub's own login form, checked against labfleet's account store.

Failure posture: a wrong password, an unknown user and an invalid name all
cost one scrypt hash and produce JupyterHub's single "Invalid username or
password" message; repeated failures lock the name and the client address
out for ``lockout`` seconds (HTTP 429, the same for existing and unknown
names): the name *from that address*, and an address that sprays many names.
Other addresses are only slowed down (see :mod:`labfleet.auth.throttle`), so
an attacker never locks the owner out. Hashing runs in a thread, at most
``max_concurrent_hashes`` at a time, so a burst of logins cannot stall the hub or exhaust memory.
"""

from __future__ import annotations

import asyncio
from typing import Any

from tornado import web
from traitlets import Float, Integer, Unicode, default

from labfleet.auth.accounts import DEFAULT_MIN_LENGTH, AccountStore
from labfleet.auth.hashing import DEFAULT_PARAMS, ScryptParams
from labfleet.auth.normalizing import NormalizingAuthenticator
from labfleet.auth.throttle import LoginThrottle
from labfleet.usernames import canonical_username

LOCKED_OUT_MESSAGE = "Too many failed sign-in attempts. Try again later."
_MAX_USERNAME_INPUT = 4096


class PasswordAuthenticator(NormalizingAuthenticator):
    """Username/password sign-in against :class:`labfleet.auth.accounts.AccountStore`.

    Having an account is the allow rule (``allowed_users``, if set, narrows
    it further). Admin rights come from the account (``labfleet users admin``)
    or from ``admin_users``. Creating a user in JupyterHub's admin UI does not
    create an account (it has no password to store), and deleting one there
    keeps the account, because the idle culler may delete hub users too.
    """

    accounts_db = Unicode(config=True, help="Path of the accounts SQLite file.")
    min_length = Integer(
        DEFAULT_MIN_LENGTH, config=True, help="Shortest password accepted when one is set."
    )
    max_failures = Integer(5, config=True, help="Failures before a username is locked out.")
    max_failures_per_ip = Integer(
        20, config=True, help="Failures before a client address is locked out."
    )
    lockout = Integer(300, config=True, help="Lock-out duration in seconds.")
    backoff_max = Float(
        5.0, config=True, help="Longest delay (s) before checking a much-guessed account."
    )
    scrypt_n = Integer(
        DEFAULT_PARAMS.n, config=True, help="scrypt cost for new hashes (power of two)."
    )
    max_concurrent_hashes = Integer(2, config=True, help="Password hashes computed at once.")

    @default("allow_existing_users")
    def _no_implicit_allow(self) -> bool:
        return False

    @default("any_allow_config")
    def _accounts_are_the_allow_rule(self) -> bool:
        return True

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._store: AccountStore | None = None
        self._throttle: LoginThrottle | None = None
        self._hash_slots: asyncio.Semaphore | None = None

    @property
    def store(self) -> AccountStore:
        if self._store is None:
            if not self.accounts_db:
                raise RuntimeError("PasswordAuthenticator.accounts_db is not configured")
            self._store = AccountStore(
                self.accounts_db, ScryptParams(n=self.scrypt_n, r=DEFAULT_PARAMS.r)
            )
        return self._store

    @property
    def throttle(self) -> LoginThrottle:
        if self._throttle is None:
            self._throttle = LoginThrottle(
                self.max_failures,
                self.lockout,
                max_failures_per_ip=self.max_failures_per_ip,
                backoff_max=self.backoff_max,
            )
        return self._throttle

    def check_allow_config(self) -> None:
        """Accounts are the allow rule, so JupyterHub's "no allow config" warning does not apply."""

    async def authenticate(
        self, handler: Any, data: dict[str, Any] | None
    ) -> dict[str, Any] | None:
        data = data or {}
        username = data.get("username")
        password = data.get("password")
        if not isinstance(username, str) or not isinstance(password, str):
            return None
        key = canonical_username(username[:_MAX_USERNAME_INPUT])
        address = self._remote_address(handler)
        decision = self.throttle.check(key, address)
        if decision.locked:
            self.log.warning("Sign-in refused from %s: too many failures", address)
            raise web.HTTPError(429, LOCKED_OUT_MESSAGE)
        if decision.delay:
            await asyncio.sleep(decision.delay)
        if self._hash_slots is None:
            self._hash_slots = asyncio.Semaphore(max(1, self.max_concurrent_hashes))
        async with self._hash_slots:
            account = await asyncio.get_running_loop().run_in_executor(
                None, self.store.verify, username, password
            )
        if account is None:
            self.throttle.failure(key, address)
            return None
        self.throttle.success(key, address)
        return {"name": account.name, "admin": account.admin or account.name in self.admin_users}

    async def check_allowed(self, username: str, authentication: Any = None) -> bool:
        if self.allowed_users and username not in self.allowed_users:
            return False
        exists = await asyncio.get_running_loop().run_in_executor(None, self.store.exists, username)
        return bool(exists)

    async def add_user(self, user: Any) -> None:
        super().add_user(user)
        exists = await asyncio.get_running_loop().run_in_executor(
            None, self.store.exists, user.name
        )
        if not exists:
            self.log.info(
                "Hub user %s has no password account; create one with `labfleet users add`",
                user.name,
            )
