"""The base of every labfleet authenticator: one username rule for logins and allow-lists.

JupyterHub passes every login name, every ``admin_users`` / ``allowed_users``
entry and every name created through the admin UI or REST API through
``normalize_username`` and ``validate_username``; overriding both here makes
:mod:`labfleet.usernames` the single rule everywhere.
"""

from __future__ import annotations

from typing import Any

from jupyterhub.auth import Authenticator
from traitlets import List, Unicode

from labfleet.auth.client_address import DEFAULT_TRUSTED_HOPS, client_address, parse_networks
from labfleet.auth.log_redaction import install_redaction
from labfleet.auth.request_log import install_request_log
from labfleet.usernames import canonical_username, username_problem


class NormalizingAuthenticator(Authenticator):  # type: ignore[misc]
    """Authenticator whose usernames follow :mod:`labfleet.usernames`.

    Also installs :mod:`labfleet.auth.log_redaction` on the hub's loggers.
    """

    trusted_hops = List(
        Unicode(),
        list(DEFAULT_TRUSTED_HOPS),
        config=True,
        help="Networks whose X-Real-Ip / X-Forwarded-For headers are believed (the proxy).",
    )

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        install_redaction()
        self._trusted = parse_networks(self.trusted_hops)

    def get_handlers(self, app: Any) -> list[tuple[str, Any]]:
        """Also install the trusted-address request log (:mod:`labfleet.auth.request_log`)."""
        install_request_log(app.tornado_settings, self._trusted)
        handlers: list[tuple[str, Any]] = list(super().get_handlers(app))
        return handlers

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
        """The real client address (headers only from trusted hops)."""
        request = getattr(handler, "request", None)
        return client_address(request, self._trusted) if request is not None else "unknown"
