"""Who may start which profile (pure: no JupyterHub, no I/O).

The same decisions back the spawn form (only allowed profiles are shown) and
the hub's enforcement of ``user_options`` from the form *and* the REST API,
so a request the form would never produce is still refused with a reason.
Group membership is read at each spawn, so a group change applies to the
next start.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from labfleet.config.profiles import SLUG_PATTERN, Profile
from labfleet.usernames import canonical_username

#: The only key labfleet reads from ``user_options``.
PROFILE_OPTION = "profile"
_SLUG = re.compile(SLUG_PATTERN.strip("^$"))
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


class PolicyError(Exception):
    """A refused request; ``reason`` is safe to show to the user, ``status`` is the HTTP code."""

    def __init__(self, reason: str, status: int = 403) -> None:
        super().__init__(reason)
        self.reason = reason
        self.status = status


@dataclass(frozen=True)
class Requester:
    """Who asks: the facts policy decisions depend on."""

    name: str
    groups: frozenset[str] = frozenset()
    admin: bool = False

    @classmethod
    def of(cls, name: str, groups: Iterable[str] = (), admin: bool = False) -> Requester:
        return cls(name=name, groups=frozenset(groups), admin=bool(admin))


def refusal(profile: Profile, who: Requester) -> str | None:
    """Why ``who`` may not start ``profile``, or None when they may."""
    if who.admin:
        return None
    if profile.admin_only:
        return f"profile {profile.slug!r} is for admins only"
    users = profile.allowed_users
    groups = profile.allowed_groups
    if users is None and groups is None:
        return None
    if users is not None and who.name in {canonical_username(user) for user in users}:
        return None
    if groups is not None and who.groups & set(groups):
        return None
    return f"profile {profile.slug!r} is not available to {who.name}"


def allowed_profiles(profiles: Sequence[Profile], who: Requester) -> list[Profile]:
    return [profile for profile in profiles if refusal(profile, who) is None]


def default_for(profiles: Sequence[Profile], who: Requester) -> Profile:
    """The configured default if allowed, else the first allowed profile."""
    allowed = allowed_profiles(profiles, who)
    if not allowed:
        raise PolicyError(f"no server profile is available to {who.name}")
    return next((profile for profile in allowed if profile.default), allowed[0])


def resolve_profile(profiles: Sequence[Profile], who: Requester, requested: object) -> Profile:
    """The profile to start for a request (None or "" means the default)."""
    if requested is None or requested == "":
        return default_for(profiles, who)
    if not isinstance(requested, str) or not _SLUG.fullmatch(requested):
        raise PolicyError("the requested profile is not a profile name")
    profile = next((p for p in profiles if p.slug == requested), None)
    if profile is None:
        raise PolicyError(f"unknown profile {requested!r}")
    reason = refusal(profile, who)
    if reason is not None:
        raise PolicyError(reason)
    return profile


def resolve_user_options(
    profiles: Sequence[Profile], who: Requester, options: Mapping[str, Any] | None
) -> Profile:
    """Check a whole ``user_options`` dict: only known keys, an allowed profile."""
    options = options or {}
    if not isinstance(options, Mapping):
        raise PolicyError("user_options must be an object", status=400)
    unknown = sorted(str(key)[:40] for key in options if key != PROFILE_OPTION)
    if unknown:
        raise PolicyError(f"unknown server option(s): {', '.join(unknown)}")
    return resolve_profile(profiles, who, options.get(PROFILE_OPTION))


def validate_free_text(value: object, pattern: str, what: str, max_length: int = 256) -> str:
    """A user-typed value (image, size) that must match ``pattern`` entirely.

    ``re.fullmatch`` and an explicit control-character check: ``$`` in a
    pattern would otherwise accept a trailing newline (``"jupyter/x:y\\n"``).
    """
    if not isinstance(value, str):
        raise PolicyError(f"{what} must be text", status=400)
    if len(value) > max_length or _CONTROL.search(value):
        raise PolicyError(f"{what} is not acceptable")
    if re.fullmatch(pattern, value) is None:
        raise PolicyError(f"{what} {value[:80]!r} is not allowed")
    return value


def named_server_limit(
    who: Requester,
    default: int,
    by_group: Mapping[str, int] | None = None,
    by_user: Mapping[str, int] | None = None,
) -> int:
    """How many named servers ``who`` may have (0: no limit).

    A per-user entry wins; otherwise the most generous of the user's groups
    (0 counts as unlimited); otherwise ``default``. Admins are not limited.
    """
    if who.admin:
        return 0
    users = {canonical_username(name): limit for name, limit in (by_user or {}).items()}
    if who.name in users:
        return users[who.name]
    limits = [limit for group, limit in (by_group or {}).items() if group in who.groups]
    if limits:
        return 0 if 0 in limits else max(limits)
    return default


class NamedServerLimit:
    """A value for ``JupyterHub.named_server_limit_per_user`` that applies the rule above.

    JupyterHub calls it with the request handler; groups are read at each
    request, so a group change applies at once.
    """

    def __init__(
        self,
        default: int,
        by_group: Mapping[str, int] | None = None,
        by_user: Mapping[str, int] | None = None,
    ) -> None:
        self.default = default
        self.by_group = dict(by_group or {})
        self.by_user = dict(by_user or {})

    def __call__(self, handler: Any) -> int:
        user = getattr(handler, "current_user", None)
        if user is None:
            return self.default
        who = Requester.of(
            user.name, [group.name for group in user.groups], bool(getattr(user, "admin", False))
        )
        return named_server_limit(who, self.default, self.by_group, self.by_user)


def profiles_setting(profiles: Sequence[Profile]) -> list[dict[str, Any]]:
    """Profiles as plain data for the ``labfleet_profiles`` spawner trait."""
    return [profile.model_dump(mode="json") for profile in profiles]


def profiles_from_setting(data: Sequence[Mapping[str, Any]]) -> list[Profile]:
    return [Profile.model_validate(dict(item)) for item in data]
