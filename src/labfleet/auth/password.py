"""The embedded default: JupyterHub's own login form, checked against labfleet's account store.

Failure posture: a wrong password, an unknown user and an invalid name all
cost one scrypt hash and produce JupyterHub's single "Invalid username or
password" message; repeated failures lock the name and the client address
out for ``lockout`` seconds (HTTP 429, the same for existing and unknown
names): the name *from that address*, and an address that sprays many names.
Other addresses are only slowed down (see :mod:`labfleet.auth.throttle`), so
an attacker never locks the owner out. Hashing runs in worker processes, one
per core by default (``max_concurrent_hashes``; :mod:`labfleet.auth.hash_pool`),
reached from a small thread pool of the authenticator's own: never on the event
loop nor in the default thread pool, so a login storm is bounded by the cores
and cannot stall the hub or exhaust memory.
"""

from __future__ import annotations

import asyncio
import contextlib
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from jupyterhub import orm
from tornado import web
from traitlets import Bool, Float, Integer, List, Unicode, default

from labfleet.auth.accounts import (
    DEFAULT_MIN_LENGTH,
    AccessChange,
    Account,
    AccountStore,
    NoSuchAccount,
)
from labfleet.auth.hash_pool import niceness_from_env, shared_pool
from labfleet.auth.hashing import DEFAULT_PARAMS, ScryptParams, offload_to
from labfleet.auth.home_archive import HomeDisposal, dispose_home
from labfleet.auth.hub_access import apply_at_start, changes_by_name
from labfleet.auth.invites import DEFAULT_TTL
from labfleet.auth.normalizing import NormalizingAuthenticator
from labfleet.auth.throttle import LoginThrottle
from labfleet.usernames import canonical_username

LOCKED_OUT_MESSAGE = "Too many failed sign-in attempts. Try again later."
_MAX_USERNAME_INPUT = 4096


class PasswordAuthenticator(NormalizingAuthenticator):
    """Username/password sign-in against :class:`labfleet.auth.accounts.AccountStore`.

    Having an account is the allow rule (``allowed_users``, if set, narrows
    it further). Admin rights come from the account (``labfleet users admin``,
    the admin page's toggle or ``/hub/accounts``) or from ``admin_users``.
    Adding a user in JupyterHub's admin page creates an account without a
    password; ``/hub/accounts`` gives the one-time set-password link. Deleting
    one there removes the account too, ends sessions and archives the home
    (see :mod:`labfleet.auth.account_api`), except when the idle culler deletes
    an inactive hub user. Account changes made while the hub was stopped are
    enforced as it starts (:func:`labfleet.auth.hub_access.apply_at_start`).
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
    max_concurrent_hashes = Integer(
        0, config=True, help="Password hashes computed at once (0: one per core)."
    )
    hash_niceness = Integer(
        config=True,
        help="CPU niceness of the hash workers (higher: the hub's requests go first).",
    )
    hash_in_processes = Bool(
        True, config=True, help="Hash in worker processes (False: in this process's threads)."
    )
    homes_dir = Unicode(
        "", config=True, help="Where members' homes live (archived or deleted on removal)."
    )
    link_ttl = Integer(
        DEFAULT_TTL, config=True, help="Seconds a one-time set-password link stays valid."
    )
    keep_accounts_for_services = List(
        Unicode(),
        ["idle-culler"],
        config=True,
        help="Services whose user deletions remove only the hub user, not the account.",
    )

    @default("hash_niceness")
    def _niceness_default(self) -> int:
        return niceness_from_env()

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
        self._login_threads: ThreadPoolExecutor | None = None
        #: the pending access changes while the hub starts, read once (see add_user)
        self._start_changes: dict[str, list[AccessChange]] | None = None

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

    async def _check_password(self, handler: Any, username: str, password: str) -> Account | None:
        """Verify through the throttle (429 when locked out); the account or None."""
        key = canonical_username(username[:_MAX_USERNAME_INPUT])
        address = self._remote_address(handler)
        decision = self.throttle.check(key, address)
        if decision.locked:
            self.log.warning("Sign-in refused from %s: too many failures", address)
            raise web.HTTPError(429, LOCKED_OUT_MESSAGE)
        if decision.delay:
            await asyncio.sleep(decision.delay)
        slots, threads = self._hashing()
        async with slots:
            account = await asyncio.get_running_loop().run_in_executor(
                threads, self.store.verify, username, password
            )
        if account is None:
            self.throttle.failure(key, address)
            return None
        self.throttle.success(key, address)
        return account

    def _hashing(self) -> tuple[asyncio.Semaphore, ThreadPoolExecutor]:
        """The hash slots and the login threads (made on first use, sized to the pool)."""
        if self._hash_slots is None or self._login_threads is None:
            pool = shared_pool(max(0, self.max_concurrent_hashes), self.hash_niceness)
            size = self.max_concurrent_hashes or pool.size
            if self.hash_in_processes:
                offload_to(pool.derive)
            self._hash_slots = asyncio.Semaphore(max(1, size))
            self._login_threads = ThreadPoolExecutor(
                max_workers=max(1, size), thread_name_prefix="labfleet-login"
            )
        return self._hash_slots, self._login_threads

    async def authenticate(
        self, handler: Any, data: dict[str, Any] | None
    ) -> dict[str, Any] | None:
        data = data or {}
        username = data.get("username")
        password = data.get("password")
        if not isinstance(username, str) or not isinstance(password, str):
            return None
        account = await self._check_password(handler, username, password)
        if account is None:
            return None
        return {"name": account.name, "admin": account.admin or account.name in self.admin_users}

    async def check_current_password(self, handler: Any, username: str, password: str) -> bool:
        """For /hub/change-password: the same throttle as the login form."""
        return await self._check_password(handler, username, password) is not None

    async def check_allowed(self, username: str, authentication: Any = None) -> bool:
        if self.allowed_users and username not in self.allowed_users:
            return False
        exists = await asyncio.get_running_loop().run_in_executor(None, self.store.exists, username)
        return bool(exists)

    async def add_user(self, user: Any) -> None:
        """Hub start: enforce recorded changes; admin page "Add users": an account to complete."""
        super().add_user(user)
        loop = asyncio.get_running_loop()
        if isinstance(user, orm.User):  # called for every hub user while the hub starts
            if self._start_changes is None:  # one read of the store for the whole start
                self._start_changes = changes_by_name(self.store.access_changes())
            # popped: a change is applied once, never again from this snapshot
            mine = self._start_changes.pop(user.name, [])
            apply_at_start(self.store, user, self.admin_users, mine)
            return
        exists = await loop.run_in_executor(None, self.store.exists, user.name)
        if not exists:
            admin = bool(getattr(user, "admin", False))
            await loop.run_in_executor(None, lambda: self.store.add(user.name, None, admin=admin))
            self.log.info(
                "Added password account %s without a password; its set-password link is on "
                "/hub/accounts",
                user.name,
            )

    def forget_member(self, name: str, how: HomeDisposal = "archive") -> Any:
        """Remove the password account (no hub change recorded) and archive/delete the home."""
        with contextlib.suppress(NoSuchAccount):
            self.store.remove(name, record=False)
        if not self.homes_dir:
            return None
        return dispose_home(Path(self.homes_dir), name, how)

    def get_handlers(self, app: Any) -> list[tuple[str, Any]]:
        from labfleet.auth.account_api import AccessChangesAPIHandler, AccountAwareUserAPIHandler
        from labfleet.auth.account_pages import (
            AccountsPage,
            ChangePasswordPage,
            SetPasswordPage,
            install_templates,
        )

        install_templates(app.tornado_settings)
        handlers: list[tuple[str, Any]] = list(super().get_handlers(app))
        return [
            *handlers,
            (r"/api/labfleet/access", AccessChangesAPIHandler),
            (r"/api/users/([^/]+)", AccountAwareUserAPIHandler),
            (r"/accounts", AccountsPage),
            (r"/set-password/([^/]+)", SetPasswordPage),
            (r"/change-password", ChangePasswordPage),
        ]
