"""The demo authenticator: any allowed name, one shared password (or none). Never for real use."""

from __future__ import annotations

import hmac
from typing import Any

from jupyterhub.auth import DummyAuthenticator
from traitlets import Unicode

from labfleet.auth.normalizing import NormalizingAuthenticator


class DemoAuthenticator(NormalizingAuthenticator, DummyAuthenticator):  # type: ignore[misc]
    """JupyterHub's DummyAuthenticator with labfleet's username rules.

    ``shared_password`` replaces the deprecated ``DummyAuthenticator.password``
    and is compared in constant time.
    """

    shared_password = Unicode(
        "", config=True, help="Password every user must give (empty: any password)."
    )

    async def authenticate(self, handler: Any, data: dict[str, str] | None) -> str | None:
        data = data or {}
        username = data.get("username")
        password = data.get("password", "")
        if not isinstance(username, str) or not isinstance(password, str):
            return None
        if self.shared_password and not hmac.compare_digest(
            password.encode("utf-8", "surrogatepass"),
            self.shared_password.encode("utf-8", "surrogatepass"),
        ):
            return None
        return username
