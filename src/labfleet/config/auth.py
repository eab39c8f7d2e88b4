"""Who may sign in: the authenticator and the allow/admin rules."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator

from labfleet.auth.usernames import InvalidUsername, normalize_usernames
from labfleet.config.base import Section

AuthKind = Literal["password", "dummy"]


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
        default_factory=list, description="If set, only these usernames may sign in."
    )
    password: PasswordAuth = Field(default_factory=PasswordAuth)
    dummy: DummyAuth = Field(default_factory=DummyAuth)

    @field_validator("admin_users", "allowed_users")
    @classmethod
    def _usernames(cls, value: list[str]) -> list[str]:
        return _normalized(value)
