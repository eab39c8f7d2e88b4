"""What a GitHub sign-in records for the lab (pure): groups, POSIX identity, git settings.

The GitHub authenticator stores the result under ``auth_state["labfleet"]``
(encrypted by JupyterHub); spawners read it back through
:func:`posix_identity` and :func:`git_environment`, so the mapping lives in
one place and both the local and the Kubernetes spawner apply the same ids.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

#: Lowest UID/GID handed out (system accounts live below), highest valid one.
MIN_ID = 1000
MAX_ID = 2**31 - 2
_RESERVED_IDS = frozenset({65534})  # nobody / nogroup
STATE_KEY = "labfleet"


class IdentityError(ValueError):
    """An id that must not be used (the message is safe to show)."""


@dataclass(frozen=True)
class Memberships:
    """Organisations (login → numeric id) and teams ("org:team") of one GitHub user."""

    orgs: Mapping[str, int]
    teams: frozenset[str]

    def names(self) -> set[str]:
        return set(self.orgs) | set(self.teams)

    def groups(self) -> list[str]:
        """Hub group names: ``org`` and ``org:team``, lower-case."""
        return sorted(self.names())


def memberships(
    orgs: Iterable[Mapping[str, Any]], teams: Iterable[Mapping[str, Any]]
) -> Memberships:
    """From GitHub's ``/user/orgs`` and ``/user/teams`` answers."""
    org_ids: dict[str, int] = {}
    for org in orgs:
        login, ident = org.get("login"), org.get("id")
        if isinstance(login, str) and isinstance(ident, int):
            org_ids[login.lower()] = ident
    team_names: set[str] = set()
    for team in teams:
        owner = team.get("organization") or {}
        slug, login = team.get("slug"), owner.get("login")
        if isinstance(slug, str) and isinstance(login, str):
            team_names.add(f"{login.lower()}:{slug.lower()}")
            if isinstance(owner.get("id"), int):
                org_ids.setdefault(login.lower(), owner["id"])
    return Memberships(orgs=org_ids, teams=frozenset(team_names))


def denied_by(member: Memberships, denied: Iterable[str]) -> str | None:
    """The first deny-list entry ("org" or "org:team") the user matches."""
    names = member.names()
    return next((entry for entry in sorted(denied) if entry.lower() in names), None)


def allowed_by(member: Memberships, allowed: Iterable[str]) -> str | None:
    names = member.names()
    return next((entry for entry in sorted(allowed) if entry.lower() in names), None)


def _valid_id(value: int) -> bool:
    return MIN_ID <= value <= MAX_ID and value not in _RESERVED_IDS


def uid_for(github_id: int, offset: int) -> int:
    uid = github_id + offset
    if not _valid_id(uid):
        raise IdentityError(
            f"GitHub id {github_id} + uid_offset {offset} = {uid} is not a usable UID "
            f"({MIN_ID}..{MAX_ID}); adjust auth.github.uid_offset"
        )
    return uid


def gids_for(member: Memberships, offset: int) -> list[int]:
    """Supplementary GIDs from org ids; ids outside the usable range are skipped."""
    return sorted({gid for gid in (i + offset for i in member.orgs.values()) if _valid_id(gid)})


@dataclass(frozen=True)
class PosixIdentity:
    uid: int | None
    gids: tuple[int, ...]


def posix_identity(auth_state: Mapping[str, Any] | None) -> PosixIdentity | None:
    """UID/GIDs recorded at sign-in, or None when the deployment does not map them."""
    state = (auth_state or {}).get(STATE_KEY) or {}
    uid = state.get("uid")
    gids = state.get("gids") or []
    if uid is None and not gids:
        return None
    if uid is not None and (not isinstance(uid, int) or not _valid_id(uid)):
        raise IdentityError("auth_state holds an unusable uid")
    clean = tuple(g for g in gids if isinstance(g, int) and _valid_id(g))
    return PosixIdentity(uid=uid, gids=clean)


def credential_helper() -> str:
    """A git credential helper that answers from $GITHUB_TOKEN (the token never hits disk)."""
    return (
        '!f() { test "$1" = get && echo username=x-access-token && '
        'echo "password=$GITHUB_TOKEN"; }; f'
    )


def git_environment(auth_state: Mapping[str, Any] | None, github_url: str) -> dict[str, str]:
    """Environment that preconfigures git in the lab: identity and a token credential."""
    state = auth_state or {}
    git = (state.get(STATE_KEY) or {}).get("git") or {}
    env: dict[str, str] = {}
    name, email = git.get("name"), git.get("email")
    if isinstance(name, str) and name:
        env["GIT_AUTHOR_NAME"] = env["GIT_COMMITTER_NAME"] = name
    if isinstance(email, str) and email:
        env["GIT_AUTHOR_EMAIL"] = env["GIT_COMMITTER_EMAIL"] = email
    token = state.get("access_token")
    if isinstance(token, str) and token:
        env["GITHUB_TOKEN"] = token
        env["GIT_CONFIG_COUNT"] = "1"
        env["GIT_CONFIG_KEY_0"] = f"credential.{github_url.rstrip('/')}.helper"
        env["GIT_CONFIG_VALUE_0"] = credential_helper()
    return env
