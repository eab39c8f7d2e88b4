"""Secrets named in config: a literal, ``env:VARIABLE`` or ``file:/path`` (a mounted Secret).

Resolved by the authenticator inside the hub process, so the YAML file and
the settings builders never hold the secret itself.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any


class SecretError(ValueError):
    """The reference does not resolve; the message names the reference, not a value."""


def resolve_secret(value: str, environ: dict[str, str] | None = None) -> str:
    env = os.environ if environ is None else environ
    if value.startswith("env:"):
        name = value[4:]
        secret = env.get(name, "")
        if not secret:
            raise SecretError(f"environment variable {name!r} is not set or empty")
        return secret
    if value.startswith("file:"):
        path = Path(value[5:])
        try:
            secret = path.read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise SecretError(f"cannot read secret file {path}: {exc.strerror}") from None
        if not secret:
            raise SecretError(f"secret file {path} is empty")
        return secret
    return value


def resolve_client_secret(authenticator: Any) -> None:
    """Replace an ``env:``/``file:`` reference in an OAuthenticator's ``client_secret``."""
    if authenticator.client_secret:
        authenticator.client_secret = resolve_secret(authenticator.client_secret)
