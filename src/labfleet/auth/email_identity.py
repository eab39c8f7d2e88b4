"""E-mail address → username, and the allow/admin decision, for IAP, Google and OIDC (pure).

The default username is the whole address, so ``alice@a.com`` and
``alice@b.com`` stay two users (ai-on-gke dropped the domain and merged
them). The domain is stripped only when exactly one domain is allowed, and
then only for addresses in that domain.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from labfleet.usernames import InvalidUsername, normalize_username

_EMAIL = re.compile(r"[^@\s]{1,64}@([a-z0-9](?:[a-z0-9.-]{0,251}[a-z0-9])?)")


class Refused(Exception):
    """Sign-in refused; ``status`` is 401 (not authenticated) or 403 (not allowed)."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


@dataclass(frozen=True)
class EmailRules:
    allowed_users: frozenset[str] = frozenset()
    allowed_domains: frozenset[str] = frozenset()
    admin_users: frozenset[str] = frozenset()
    allow_all: bool = False
    strip_domain: bool = False


@dataclass(frozen=True)
class Decision:
    name: str
    admin: bool
    email: str
    domain: str


def split_email(email: object) -> tuple[str, str]:
    """The lower-cased address and its domain (Refused 403 if it is not an address)."""
    if not isinstance(email, str) or len(email) > 320:
        raise Refused(403, "the identity has no usable e-mail address")
    address = email.strip().lower()
    match = _EMAIL.fullmatch(address)
    if match is None or ".." in match.group(1):
        raise Refused(403, "the identity has no usable e-mail address")
    return address, match.group(1)


def username_from_email(email: object, rules: EmailRules) -> str:
    address, domain = split_email(email)
    raw = address
    if rules.strip_domain and len(rules.allowed_domains) == 1 and domain in rules.allowed_domains:
        raw = address.rsplit("@", 1)[0]
    try:
        return normalize_username(raw)
    except InvalidUsername as exc:
        raise Refused(403, f"the e-mail address does not make a valid username: {exc}") from None


def decide(email: object, rules: EmailRules) -> Decision:
    """Username and admin flag for ``email``, or Refused(403) with the reason."""
    address, domain = split_email(email)
    name = username_from_email(address, rules)
    admin = name in rules.admin_users
    allowed = (
        rules.allow_all or admin or name in rules.allowed_users or domain in rules.allowed_domains
    )
    if not allowed:
        raise Refused(403, f"{name} is not allowed to sign in here")
    return Decision(name=name, admin=admin, email=address, domain=domain)
