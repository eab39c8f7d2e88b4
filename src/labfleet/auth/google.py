"""Google sign-in: GoogleOAuthenticator with the hosted-domain and verified-email checks made hard.

Upstream checks ``hd`` among the block rules but ``verified_email`` only
among the allow rules, which ``allow_all`` skips. Here both run while the
username is derived, so no allow setting can bypass them: an account whose
``hd`` claim is missing or not in ``hosted_domain`` is refused even if its
e-mail address ends in an allowed domain (a consumer account registered
with a work address). ``hosted_domain`` (``auth.allowed_domains``) is also
an allow rule: accounts of those Workspace domains may sign in.
"""

from __future__ import annotations

from typing import Any

from oauthenticator.google import GoogleOAuthenticator
from oauthenticator.oauth2 import OAuthenticator
from tornado import web

from labfleet.auth.email_identity import EmailRules, Refused, username_from_email
from labfleet.auth.normalizing import NormalizingAuthenticator
from labfleet.auth.oidc import email_is_verified
from labfleet.auth.secret_refs import resolve_client_secret


class GoogleAuthenticator(NormalizingAuthenticator, GoogleOAuthenticator):  # type: ignore[misc]
    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        resolve_client_secret(self)

    def _refuse(self, reason: str) -> web.HTTPError:
        self.log.warning("Google sign-in refused: %s", reason)
        return web.HTTPError(403, reason)

    def user_info_to_username(self, user_info: dict[str, Any]) -> str:
        if not email_is_verified(user_info):
            raise self._refuse("the e-mail address is not verified")
        domains = frozenset(d.lower() for d in self.hosted_domain)
        hd = user_info.get("hd")
        if domains and (not isinstance(hd, str) or hd.lower() not in domains):
            raise self._refuse("the account is not in an allowed Google Workspace domain")
        email = user_info.get("email")
        user_info["domain"] = str(email).rsplit("@", 1)[-1].lower()  # upstream reads it later
        try:
            return username_from_email(
                email, EmailRules(allowed_domains=domains, strip_domain=self.strip_domain)
            )
        except Refused as refusal:
            raise self._refuse(refusal.reason) from None

    async def check_allowed(self, username: str, auth_model: dict[str, Any] | None) -> bool:
        if auth_model is None:
            return True
        if await OAuthenticator.check_allowed(self, username, auth_model):
            return True
        user_info = (auth_model.get("auth_state") or {}).get(self.user_auth_state_key) or {}
        hd = user_info.get("hd")
        return bool(self.hosted_domain) and isinstance(hd, str) and hd.lower() in self.hosted_domain
