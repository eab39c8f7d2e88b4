"""Account changes that take effect at once: remove, grant/revoke admin, new password.

Used by ``labfleet users ...`` (the CLI stays a thin parser). Each operation
changes the account store and records the access change in the same
transaction; then it asks the running hub to enforce it (``hub`` is anything
with :meth:`HubLink.apply_access_changes`; ``None`` when the platform is not
running). A stopped platform enforces recorded changes at its next start,
before it serves anyone, so the outcome is the same either way.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from labfleet.auth.accounts import (
    DEFAULT_MIN_LENGTH,
    REMOVE,
    AccountStore,
    NoSuchAccount,
)
from labfleet.auth.home_archive import HomeDisposal, dispose_home
from labfleet.usernames import normalize_username

#: ``purge_local_user(data_dir, username) -> [what was removed]`` (system account, cgroups)
Purge = Callable[[Path, str], list[str]]


class HubLink(Protocol):
    def apply_access_changes(self) -> list[str]: ...


class HubUnreachable(RuntimeError):
    """The hub runs but refused or failed the request; the change stays recorded."""


@dataclass
class Outcome:
    name: str
    #: True: the running hub enforced it now; False: it is enforced at the next start
    enforced_now: bool
    notes: list[str] = field(default_factory=list)


def _enforce(hub: HubLink | None, outcome: Outcome) -> Outcome:
    if hub is None:
        outcome.notes.append("the platform is not running: this takes effect when it starts")
        return outcome
    try:
        hub.apply_access_changes()
    except Exception as exc:
        raise HubUnreachable(
            f"the change is recorded, but the running hub did not apply it ({exc}); "
            "it applies at the next start, or run the command again"
        ) from exc
    outcome.enforced_now = True
    return outcome


def remove_member(
    store: AccountStore,
    homes_dir: Path,
    name: str,
    hub: HubLink | None,
    home: HomeDisposal = "archive",
    purge: Purge | None = None,
    data_dir: Path | None = None,
) -> Outcome:
    """Remove the account, then (hub) servers, sessions, tokens and the hub user, then the home.

    Running it again after a failed hub request retries the enforcement;
    with ``purge`` it also cleans up after a member removed earlier without it.
    """
    key = normalize_username(name)
    try:
        store.remove(key)
    except NoSuchAccount:
        pending = any(c.name == key and c.action == REMOVE for c in store.access_changes())
        if not pending and purge is None:
            raise
    outcome = _enforce(hub, Outcome(name=key, enforced_now=False))
    where = dispose_home(homes_dir, key, home)
    if home == "delete":
        outcome.notes.append("their files were deleted")
    elif where is not None:
        outcome.notes.append(f"their files were moved to {where} (admins only)")
    if purge is not None and data_dir is not None:
        for item in purge(data_dir, key):
            outcome.notes.append(f"purged {item}")
    return outcome


def set_admin(store: AccountStore, name: str, admin: bool, hub: HubLink | None) -> Outcome:
    key = normalize_username(name)
    store.set_admin(key, admin)
    return _enforce(hub, Outcome(name=key, enforced_now=False))


def change_password(
    store: AccountStore,
    name: str,
    password: str,
    hub: HubLink | None,
    end_sessions: bool = True,
    min_length: int = DEFAULT_MIN_LENGTH,
) -> Outcome:
    key = normalize_username(name)
    store.set_password(key, password, min_length=min_length, end_sessions=end_sessions)
    outcome = Outcome(name=key, enforced_now=False)
    if not end_sessions:
        outcome.notes.append("existing sessions and tokens keep working (--keep-sessions)")
        return outcome
    return _enforce(hub, outcome)
