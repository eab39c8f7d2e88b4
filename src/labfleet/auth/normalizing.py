"""The base of every labfleet authenticator: one username rule for logins and allow-lists.

JupyterHub passes every login name, every ``admin_users`` / ``allowed_users``
entry and every name created through the admin UI or REST API through
``normalize_username`` and ``validate_username``; overriding both here makes
:mod:`labfleet.usernames` the single rule everywhere.
"""

from __future__ import annotations

from typing import Any

from jupyterhub.auth import Authenticator

from labfleet.auth.log_redaction import install_redaction
from labfleet.usernames import canonical_username, username_problem


class NormalizingAuthenticator(Authenticator):  # type: ignore[misc]
    """Authenticator whose usernames follow :mod:`labfleet.usernames`.

    Also installs :mod:`labfleet.auth.log_redaction` on the hub's loggers.
    """

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        install_redaction()

    def normalize_username(self, username: str) -> str:
        name = canonical_username(username)
        mapped: str = self.username_map.get(name, name)
        return canonical_username(mapped)

    def validate_username(self, username: str) -> bool:
        problem = username_problem(username)
        if problem is not None:
            self.log.warning("Refused username (%s)", problem)
            return False
        valid: bool = super().validate_username(username)
        return valid

    def _remote_address(self, handler: Any) -> str:
        request = getattr(handler, "request", None)
        return str(getattr(request, "remote_ip", None) or "unknown")
