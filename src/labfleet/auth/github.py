"""GitHub (and GitHub Enterprise) sign-in: OAuthenticator's GitHubOAuthenticator, extended.

Added for the seeds: a deny-list of orgs/teams that wins over every allow
rule (``allow_all`` and ``admin_users`` included); memberships fetched once
per sign-in from ``/user/orgs`` and ``/user/teams`` and turned into hub groups
(``org``, ``org:team``) and the org allow-list decision; optional UID = GitHub
id and GIDs = org ids, recorded in ``auth_state`` for the spawners; and the
user's name, primary e-mail and token exposed to the lab so git works.
"""

from __future__ import annotations

from typing import Any

from oauthenticator.github import GitHubOAuthenticator
from oauthenticator.oauth2 import OAuthenticator
from tornado import web
from traitlets import Bool, Integer, Set, Unicode

from labfleet.auth.github_identity import (
    STATE_KEY,
    IdentityError,
    Memberships,
    allowed_by,
    denied_by,
    gids_for,
    git_environment,
    memberships,
    posix_identity,
    uid_for,
)
from labfleet.auth.normalizing import NormalizingAuthenticator
from labfleet.auth.secret_refs import resolve_client_secret


class GitHubAuthenticator(NormalizingAuthenticator, GitHubOAuthenticator):  # type: ignore[misc]
    """GitHub sign-in with org/team groups, deny-list, POSIX ids and git settings."""

    denied_organizations = Set(
        Unicode(),
        config=True,
        help="Members of these orgs ('org') or teams ('org:team') are refused.",
    )
    teams_as_groups = Bool(True, config=True, help="Hub groups 'org' and 'org:team'.")
    uid_from_id = Bool(False, config=True, help="UID = GitHub user id + uid_offset.")
    uid_offset = Integer(0, config=True)
    gids_from_orgs = Bool(False, config=True, help="Supplementary GIDs = org ids + gid_offset.")
    gid_offset = Integer(0, config=True)
    git_env = Bool(True, config=True, help="Name, e-mail and token for git in the lab.")

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        resolve_client_secret(self)

    async def _fetch_list(self, path: str, token: str, token_type: str) -> list[Any]:
        url = f"{self.github_api}{path}?per_page=100"
        items: list[Any] = await self._paginated_fetch(url, token, token_type)
        return items

    async def _primary_email(self, token: str, token_type: str) -> str | None:
        try:
            response = await self.httpfetch(
                f"{self.github_api}/user/emails",
                "fetching user emails",
                method="GET",
                headers=self.build_userdata_request_headers(token, token_type),
                validate_cert=self.validate_server_cert,
                raise_error=False,
            )
        except Exception:  # the e-mail is a convenience; sign-in goes on without it
            return None
        if not isinstance(response, list):
            return None
        for entry in response:
            if isinstance(entry, dict) and entry.get("primary") and entry.get("verified"):
                email = entry.get("email")
                return email if isinstance(email, str) else None
        return None

    async def update_auth_model(self, auth_model: dict[str, Any]) -> dict[str, Any]:
        auth_model = await super().update_auth_model(auth_model)
        state = auth_model["auth_state"]
        user_info = state[self.user_auth_state_key]
        token = state["token_response"]["access_token"]
        token_type = state["token_response"].get("token_type", "bearer")
        member = memberships(
            await self._fetch_list("/user/orgs", token, token_type),
            await self._fetch_list("/user/teams", token, token_type),
        )
        denied = denied_by(member, self.denied_organizations)
        if denied is not None:
            self.log.warning(
                "GitHub sign-in of %s refused: member of %s", auth_model["name"], denied
            )
            raise web.HTTPError(403, f"Members of {denied} may not sign in here.")
        email = user_info.get("email")
        if not email and self.git_env:
            email = await self._primary_email(token, token_type)
        labfleet: dict[str, Any] = {
            "orgs": dict(member.orgs),
            "teams": sorted(member.teams),
            "groups": member.groups() if self.teams_as_groups else [],
            "git": {"name": user_info.get("name") or user_info.get("login"), "email": email},
        }
        if self.uid_from_id:
            try:
                labfleet["uid"] = uid_for(int(user_info["id"]), self.uid_offset)
            except (IdentityError, KeyError, TypeError, ValueError) as exc:
                self.log.warning("GitHub sign-in of %s refused: %s", auth_model["name"], exc)
                raise web.HTTPError(
                    403, "Your GitHub account cannot be mapped to a user id."
                ) from None
        if self.gids_from_orgs:
            labfleet["gids"] = gids_for(member, self.gid_offset)
        state[STATE_KEY] = labfleet
        return auth_model

    async def get_user_groups(self, auth_state: dict[str, Any]) -> set[str]:
        return set((auth_state.get(STATE_KEY) or {}).get("groups") or [])

    @staticmethod
    def _memberships(auth_model: dict[str, Any]) -> Memberships:
        state = (auth_model.get("auth_state") or {}).get(STATE_KEY) or {}
        return Memberships(orgs=state.get("orgs") or {}, teams=frozenset(state.get("teams") or []))

    async def check_allowed(self, username: str, auth_model: dict[str, Any] | None) -> bool:
        """allowed_users / admins / allowed_groups (upstream), or membership of an allowed org.

        Memberships come from this sign-in's ``/user/orgs`` and ``/user/teams``
        (upstream asks GitHub once per configured org instead).
        """
        if auth_model is None:
            return True
        if await OAuthenticator.check_allowed(self, username, auth_model):
            return True
        if self.allowed_organizations:
            return allowed_by(self._memberships(auth_model), self.allowed_organizations) is not None
        return False

    async def pre_spawn_start(self, user: Any, spawner: Any) -> None:
        """Hand the spawner what sign-in recorded: POSIX ids and git's environment."""
        auth_state = await user.get_auth_state()
        spawner.labfleet_posix_identity = posix_identity(auth_state)
        if self.git_env:
            env = git_environment(auth_state, self.github_url)
            spawner.environment = {**spawner.environment, **env}
