"""Who may sign in: the authenticator, its provider settings and the allow/admin rules.

Rules that hold for every kind except the ``dummy`` demo:

* an explicit allow rule is required (``allowed_users``, ``allowed_domains``,
  ``allowed_groups``, ``github.allowed_organizations`` or ``allow_all: true``);
  there is no silent allow-all;
* ``allow_all`` never lifts a hard restriction (Google's ``hd`` claim, the
  GitHub deny-list, ``email_verified``);
* every username, configured or signed in, goes through
  :func:`labfleet.usernames.normalize_username`.

Secrets (``client_secret``) may be given as ``env:VAR`` or ``file:/path`` so
that they stay out of the YAML file.
"""

from __future__ import annotations

import re
from typing import Literal

from pydantic import Field, field_validator, model_validator

from labfleet.config.base import Section
from labfleet.usernames import InvalidUsername, normalize_usernames

AuthKind = Literal["password", "dummy", "iap", "github", "google", "oidc"]
#: Kinds that sign users in by e-mail address (``allowed_domains`` applies).
EMAIL_KINDS = frozenset({"iap", "google", "oidc"})
#: Kinds whose users carry groups (``allowed_groups`` / ``admin_groups`` apply).
GROUP_KINDS = frozenset({"github", "oidc"})

_DOMAIN = re.compile(r"(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z][a-z0-9-]{0,61}[a-z0-9]")
_GITHUB_NAME = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,38})"
_GITHUB_ORG_TEAM = re.compile(rf"{_GITHUB_NAME}(?::[A-Za-z0-9._-]{{1,100}})?")
_URL = r"^https?://[^\s/?#]+(/[^\s?#]*)?$"
_REFERENCE_FORMS = "A literal, 'env:VARIABLE' or 'file:/path/to/secret'."


class PasswordAuth(Section):
    """The embedded default: accounts in the data directory, hashed with scrypt."""

    min_length: int = Field(default=8, ge=6, le=1024)
    max_failures: int = Field(default=5, ge=1, description="Failures before a lock-out.")
    max_failures_per_ip: int = Field(
        default=20, ge=1, description="Failures from one client address before a lock-out."
    )
    lockout: int = Field(default=300, ge=1, description="Lock-out in seconds.")


class DummyAuth(Section):
    """JupyterHub's demo authenticator: any username, one shared password."""

    password: str | None = Field(default=None, description="Shared password (None: any).")


class IapAuth(Section):
    """Google Cloud Identity-Aware Proxy: trust only a verified ``x-goog-iap-jwt-assertion``."""

    audience: str | None = Field(
        default=None,
        min_length=1,
        description="Expected 'aud': /projects/NUMBER/global/backendServices/ID "
        "(or /projects/NUMBER/apps/PROJECT for App Engine).",
    )
    jwks: str = Field(
        default="https://www.gstatic.com/iap/verify/public_key-jwk",
        min_length=1,
        description="JWKS URL (https) or file path with IAP's public keys.",
    )
    issuer: str = "https://cloud.google.com/iap"
    leeway: int = Field(default=30, ge=0, le=300, description="Allowed clock skew in seconds.")
    strip_domain: bool = Field(
        default=False,
        description="Username without '@domain' (only with exactly one allowed domain).",
    )


class OAuthClient(Section):
    """What every OAuth provider needs: the registered client."""

    client_id: str | None = Field(default=None, min_length=1)
    client_secret: str | None = Field(default=None, min_length=1, description=_REFERENCE_FORMS)
    callback_url: str | None = Field(
        default=None,
        pattern=_URL,
        description="Registered redirect URI (default: <hub URL>/hub/oauth_callback).",
    )


#: GitHub OAuth scopes a member's token may get (GitHub's own names; a typo is refused).
GitHubScope = Literal[
    "repo",
    "public_repo",
    "repo:status",
    "repo_deployment",
    "repo:invite",
    "security_events",
    "workflow",
    "gist",
    "read:packages",
    "write:packages",
    "write:org",
    "read:project",
    "project",
    "notifications",
    "read:gpg_key",
    "read:public_key",
]


class GitHubAuth(OAuthClient):
    """GitHub or GitHub Enterprise: organisations and teams become hub groups."""

    url: str = Field(
        default="https://github.com", pattern=_URL, description="GitHub Enterprise URL."
    )
    allowed_organizations: list[str] = Field(
        default_factory=list, description="Members of these orgs ('org') or teams ('org:team')."
    )
    denied_organizations: list[str] = Field(
        default_factory=list, description="Members of these orgs or teams are always refused."
    )
    teams_as_groups: bool = Field(
        default=True, description="Hub groups 'org' and 'org:team' from the user's memberships."
    )
    uid_from_id: bool = Field(default=False, description="UID = GitHub user id + uid_offset.")
    uid_offset: int = Field(default=0, ge=0, le=2**31)
    gids_from_orgs: bool = Field(
        default=False, description="Supplementary GIDs = org ids + gid_offset."
    )
    gid_offset: int = Field(default=0, ge=0, le=2**31)
    git_env: bool = Field(
        default=True, description="Give the lab git's name, e-mail and a token credential."
    )
    extra_scopes: list[GitHubScope] = Field(
        default_factory=list,
        description=(
            "OAuth scopes asked for besides read:user, user:email and read:org, e.g. "
            "public_repo (or repo) so the token git_env gives can push."
        ),
    )

    @field_validator("allowed_organizations", "denied_organizations")
    @classmethod
    def _org_names(cls, value: list[str]) -> list[str]:
        for entry in value:
            if not _GITHUB_ORG_TEAM.fullmatch(entry):
                raise ValueError(f"{entry!r} is not 'org' or 'org:team'")
        return [entry.lower() for entry in value]


class GoogleAuth(OAuthClient):
    """Google sign-in; ``allowed_domains`` are checked against the ``hd`` claim."""

    strip_domain: bool = False
    api_url: str = Field(default="https://www.googleapis.com", pattern=_URL)
    authorize_url: str = Field(default="https://accounts.google.com/o/oauth2/v2/auth", pattern=_URL)


class OidcAuth(OAuthClient):
    """Any OpenID Connect provider (Keycloak, CILogon, Auth0, Dex, ...)."""

    issuer: str | None = Field(default=None, pattern=_URL)
    authorize_url: str | None = Field(default=None, pattern=_URL)
    token_url: str | None = Field(default=None, pattern=_URL)
    userinfo_url: str | None = Field(
        default=None,
        pattern=_URL,
        description="Endpoints default to the issuer's /.well-known/openid-configuration.",
    )
    scopes: list[str] = Field(default_factory=lambda: ["openid", "email", "profile"])
    username_claim: str = Field(
        default="email",
        pattern=r"^[A-Za-z_][A-Za-z0-9_.:-]*$",
        description="Claim that names the user; 'email' requires email_verified.",
    )
    groups_claim: str | None = Field(default=None, pattern=r"^[A-Za-z_][A-Za-z0-9_.:-]*$")
    strip_domain: bool = False


def _normalized(value: list[str]) -> list[str]:
    try:
        return normalize_usernames(value)
    except InvalidUsername as exc:
        raise ValueError(str(exc)) from None


class AuthSection(Section):
    kind: AuthKind = "password"
    admin_users: list[str] = Field(
        default_factory=list,
        description="Usernames with admin rights (normalised: 'Alice' is 'alice').",
    )
    allowed_users: list[str] = Field(
        default_factory=list, description="These usernames may sign in."
    )
    allowed_domains: list[str] = Field(
        default_factory=list,
        description="Verified e-mail addresses in these domains may sign in (iap, google, oidc).",
    )
    allowed_groups: list[str] = Field(
        default_factory=list, description="Members of these groups may sign in (github, oidc)."
    )
    admin_groups: list[str] = Field(
        default_factory=list, description="Members of these groups are admins (github, oidc)."
    )
    allow_all: bool = Field(
        default=False,
        description="Allow everyone the provider authenticates; hard restrictions still apply.",
    )
    password: PasswordAuth = Field(default_factory=PasswordAuth)
    dummy: DummyAuth = Field(default_factory=DummyAuth)
    iap: IapAuth = Field(default_factory=IapAuth)
    github: GitHubAuth = Field(default_factory=GitHubAuth)
    google: GoogleAuth = Field(default_factory=GoogleAuth)
    oidc: OidcAuth = Field(default_factory=OidcAuth)

    @field_validator("admin_users", "allowed_users")
    @classmethod
    def _usernames(cls, value: list[str]) -> list[str]:
        return _normalized(value)

    @field_validator("allowed_domains")
    @classmethod
    def _domains(cls, value: list[str]) -> list[str]:
        domains = [domain.strip().lower().lstrip("@") for domain in value]
        for domain in domains:
            if not _DOMAIN.fullmatch(domain):
                raise ValueError(f"{domain!r} is not a domain name (e.g. 'example.org')")
        return list(dict.fromkeys(domains))

    @field_validator("allowed_groups", "admin_groups")
    @classmethod
    def _groups(cls, value: list[str]) -> list[str]:
        for group in value:
            if not group or len(group) > 255 or any(ch.isspace() for ch in group):
                raise ValueError(f"{group!r} is not a group name")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> AuthSection:
        kind = self.kind
        if self.allowed_domains and kind not in EMAIL_KINDS:
            raise ValueError(f"auth.allowed_domains applies to iap, google and oidc, not {kind!r}")
        if (self.allowed_groups or self.admin_groups) and kind not in GROUP_KINDS:
            raise ValueError(
                f"auth.allowed_groups/admin_groups apply to github and oidc, not {kind!r}"
            )
        if self.allowed_groups or self.admin_groups:
            if kind == "oidc" and not self.oidc.groups_claim:
                raise ValueError("auth.allowed_groups/admin_groups need auth.oidc.groups_claim")
            if kind == "github" and not self.github.teams_as_groups:
                raise ValueError(
                    "auth.allowed_groups/admin_groups need auth.github.teams_as_groups: true"
                )
        self._check_provider()
        self._check_strip_domain()
        self._check_allow_rule()
        return self

    def _check_provider(self) -> None:
        kind = self.kind
        if kind == "iap" and not self.iap.audience:
            raise ValueError("auth.iap.audience is required when auth.kind is 'iap'")
        if kind in ("github", "google", "oidc"):
            client: OAuthClient = getattr(self, kind)
            if not client.client_id or not client.client_secret:
                raise ValueError(
                    f"auth.{kind}.client_id and auth.{kind}.client_secret are required "
                    f"when auth.kind is {kind!r}"
                )
        if kind == "oidc" and not self.oidc.issuer:
            raise ValueError("auth.oidc.issuer is required when auth.kind is 'oidc'")

    def _check_strip_domain(self) -> None:
        if self.kind not in EMAIL_KINDS:
            return
        section: IapAuth | GoogleAuth | OidcAuth = getattr(self, self.kind)
        if section.strip_domain and len(self.allowed_domains) != 1:
            raise ValueError(
                f"auth.{self.kind}.strip_domain needs exactly one entry in auth.allowed_domains "
                "(otherwise alice@a.com and alice@b.com would be the same user)"
            )

    def _check_allow_rule(self) -> None:
        if self.kind in ("password", "dummy"):
            return  # accounts are the rule; dummy is the demo
        if self.allow_all:
            ignored = [
                key
                for key, value in (
                    ("allowed_users", self.allowed_users),
                    ("allowed_groups", self.allowed_groups),
                    # For google, allowed_domains is the hd restriction, which allow_all keeps.
                    ("allowed_domains", self.allowed_domains if self.kind != "google" else []),
                    ("github.allowed_organizations", self.github.allowed_organizations),
                )
                if value
            ]
            if ignored:
                raise ValueError(
                    f"auth.allow_all admits everyone, so auth.{ignored[0]} would have no effect; "
                    "remove one of them"
                )
            return
        rules = bool(
            self.allowed_users
            or self.allowed_domains
            or self.allowed_groups
            or (self.kind == "github" and self.github.allowed_organizations)
        )
        if not rules:
            hint = {
                "github": "allowed_users, github.allowed_organizations or allowed_groups",
                "oidc": "allowed_users, allowed_domains or allowed_groups",
            }.get(self.kind, "allowed_users or allowed_domains")
            raise ValueError(
                f"auth.kind {self.kind!r} needs an explicit allow rule: set {hint} "
                "(or allow_all: true to admit everyone the provider authenticates)"
            )
