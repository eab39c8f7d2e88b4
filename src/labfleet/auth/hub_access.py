"""Taking access away inside the hub, at once: stop servers, revoke credentials, drop roles.

JupyterHub identifies a browser by the user's ``cookie_id`` and a script by
an API token (OAuth access tokens for servers and services are API tokens
too). "Ending sessions" here means all three of:

* every server of the user is stopped: a running server keeps accepting a
  token it has checked for up to five minutes (``HubAuth.cache_max_age``),
  so revoking alone would not end access to it within one request;
* every API token and OAuth code of the user is deleted;
* ``cookie_id`` is replaced, so every hub login cookie ever issued stops
  matching (JupyterHub has no per-browser sessions; all of them end).

The account store records each change (:data:`~labfleet.auth.accounts.REMOVE`,
``LOGOUT``, ``ADMIN``) with the account change itself; the hub applies them
from the CLI's request (``POST /hub/api/labfleet/access``) or, when the
platform was stopped, at its next start before it serves a request.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from typing import Any

from jupyterhub.roles import assign_default_roles
from jupyterhub.utils import new_token
from sqlalchemy.orm import object_session

from labfleet.auth.accounts import ADMIN, LOGOUT, REMOVE, AccessChange, AccountStore

STOP_TIMEOUT = 60.0


async def stop_all_servers(handler: Any, user: Any, timeout: float = STOP_TIMEOUT) -> None:
    """Stop every server of ``user`` (default and named) and wait until they are down."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        busy = False
        for name, spawner in list(user.spawners.items()):
            if spawner.pending:  # starting or stopping: wait for it to settle
                busy = True
            elif spawner.ready or spawner.active:
                busy = True
                await handler.stop_single_user(user, name)
        if not busy:
            return
        if loop.time() > deadline:
            raise TimeoutError(f"servers of {user.name} did not stop in {timeout:.0f}s")
        await asyncio.sleep(0.1)


def revoke_credentials(db: Any, orm_user: Any) -> int:
    """Delete the user's API tokens and OAuth codes and rotate ``cookie_id``; returns tokens."""
    tokens = list(orm_user.api_tokens)
    for token in tokens:
        db.delete(token)
    for code in list(orm_user.oauth_codes):
        db.delete(code)
    orm_user.cookie_id = new_token()
    db.commit()
    return len(tokens)


def set_hub_admin(db: Any, user: Any, admin: bool) -> None:
    """Make the hub's admin flag and admin role follow ``admin`` now."""
    user.admin = admin
    assign_default_roles(db, entity=user)
    db.commit()


async def end_sessions(handler: Any, user: Any) -> None:
    """Revoke first (the next request is refused), stop servers, revoke what appeared meanwhile."""
    revoke_credentials(handler.db, user.orm_user)
    await stop_all_servers(handler, user)
    revoke_credentials(handler.db, user.orm_user)


async def remove_hub_user(handler: Any, user: Any) -> None:
    """Stop servers, revoke everything, and delete the hub user (with its spawners)."""
    await end_sessions(handler, user)
    await user.delete_spawners()
    handler.users.delete(user)


def wanted_admin(store: AccountStore, name: str, config_admins: Iterable[str]) -> bool | None:
    account = store.get(name)
    if account is None:
        return None
    return account.admin or name in set(config_admins)


async def apply_changes(
    handler: Any, store: AccountStore, config_admins: Iterable[str]
) -> list[str]:
    """Apply every recorded change through a live handler; returns what was done."""
    done: list[str] = []
    for change in store.access_changes():
        user = handler.find_user(change.name)
        if user is not None:
            done.append(await _apply(handler, store, change, user, config_admins))
        store.applied(change)
    return done


async def _apply(
    handler: Any, store: AccountStore, change: AccessChange, user: Any, admins: Iterable[str]
) -> str:
    if change.action == REMOVE:
        await remove_hub_user(handler, user)
    elif change.action == LOGOUT:
        await end_sessions(handler, user)
    elif change.action == ADMIN:
        admin = wanted_admin(store, change.name, admins)
        if admin is not None:
            set_hub_admin(handler.db, user, admin)
    return f"{change.action} {change.name}"


def changes_by_name(changes: Iterable[AccessChange]) -> dict[str, list[AccessChange]]:
    """Pending changes grouped per member, oldest first: read once for a whole hub start."""
    grouped: dict[str, list[AccessChange]] = {}
    for change in changes:
        grouped.setdefault(change.name, []).append(change)
    return grouped


def apply_at_start(
    store: AccountStore,
    orm_user: Any,
    config_admins: Iterable[str],
    changes: Iterable[AccessChange] | None = None,
) -> None:
    """The same changes for one hub user while the hub starts (no servers run for it then
    that the hub could stop; the supervisor stops orphans of deleted users).

    ``changes``: this user's pending changes when the caller read them once for every user
    (the hub calls this for each of its users at start: 10,000 reads of the store were
    seconds of a restart); ``None`` reads them here.
    """
    db = object_session(orm_user)
    if db is None:
        return
    for change in store.access_changes() if changes is None else changes:
        if change.name != orm_user.name:
            continue
        if change.action == REMOVE:
            revoke_credentials(db, orm_user)
            db.delete(orm_user)
            db.commit()
        elif change.action == LOGOUT:
            revoke_credentials(db, orm_user)
        elif change.action == ADMIN:
            admin = wanted_admin(store, change.name, config_admins)
            if admin is not None:
                set_hub_admin(db, orm_user, admin)
        store.applied(change)
