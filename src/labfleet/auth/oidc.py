"""Generic OpenID Connect (Keycloak, CILogon, Auth0, Dex, ...): GenericOAuthenticator, hardened.

* Endpoints come from the issuer's discovery document when not configured,
  and the document must name the configured issuer.
* When the username is the e-mail address, or an allowed domain admits the
  user, ``email_verified`` must be true; this holds with ``allow_all`` too,
  because the check runs while the username is derived, before any allow rule.
* E-mail usernames keep their domain unless exactly one domain is allowed
  and ``strip_domain`` is set; every name goes through labfleet's rules.
"""

from __future__ import annotations

import json
import urllib.request
from typing import Any
from urllib.parse import urlsplit

from oauthenticator.generic import GenericOAuthenticator
from oauthenticator.oauth2 import OAuthenticator
from tornado import web
from traitlets import Bool, List, Unicode

from labfleet.auth.email_identity import EmailRules, Refused, split_email, username_from_email
from labfleet.auth.normalizing import NormalizingAuthenticator
from labfleet.auth.secret_refs import resolve_client_secret
from labfleet.usernames import InvalidUsername, normalize_username

_LOOPBACK = frozenset({"127.0.0.1", "localhost", "::1"})


class DiscoveryError(RuntimeError):
    pass


def fetch_discovery(issuer: str, timeout: float = 10) -> dict[str, Any]:
    """The issuer's ``/.well-known/openid-configuration`` (https, or http on loopback)."""
    parts = urlsplit(issuer)
    if parts.scheme != "https" and not (parts.scheme == "http" and parts.hostname in _LOOPBACK):
        raise DiscoveryError(f"OIDC issuer {issuer!r} must use https")
    url = issuer.rstrip("/") + "/.well-known/openid-configuration"
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:  # noqa: S310 (checked above)
            document = json.loads(response.read(1024 * 1024))
    except (OSError, ValueError) as exc:
        raise DiscoveryError(f"cannot read OIDC discovery from {url}: {exc}") from None
    if not isinstance(document, dict) or document.get("issuer", "").rstrip("/") != issuer.rstrip(
        "/"
    ):
        raise DiscoveryError(f"OIDC discovery at {url} names a different issuer")
    return document


def email_is_verified(user_info: dict[str, Any]) -> bool:
    """True only for an explicit true (some providers send the string "true")."""
    value = user_info.get("email_verified", user_info.get("verified_email"))
    return value is True or value == "true"


class OidcAuthenticator(NormalizingAuthenticator, GenericOAuthenticator):  # type: ignore[misc]
    """OpenID Connect sign-in with verified e-mail and domain rules."""

    issuer = Unicode(config=True, help="OIDC issuer URL (discovery source).")
    allowed_domains = List(Unicode(), config=True, help="Verified e-mail domains allowed.")
    strip_domain = Bool(False, config=True)

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        resolve_client_secret(self)
        endpoints = {
            "authorize_url": "authorization_endpoint",
            "token_url": "token_endpoint",
            "userdata_url": "userinfo_endpoint",
        }
        missing = [trait for trait in endpoints if not getattr(self, trait)]
        if self.issuer and missing:
            document = fetch_discovery(self.issuer)
            for trait in missing:
                setattr(self, trait, document[endpoints[trait]])

    def rules(self) -> EmailRules:
        return EmailRules(
            allowed_domains=frozenset(d.lower() for d in self.allowed_domains),
            strip_domain=self.strip_domain,
        )

    def _refuse(self, reason: str) -> web.HTTPError:
        self.log.warning("OIDC sign-in refused: %s", reason)
        return web.HTTPError(403, reason)

    def user_info_to_username(self, user_info: dict[str, Any]) -> str:
        claim = self.username_claim
        if claim == "email":
            if not email_is_verified(user_info):
                raise self._refuse("the e-mail address is not verified")
            try:
                return username_from_email(user_info.get("email"), self.rules())
            except Refused as refusal:
                raise self._refuse(refusal.reason) from None
        raw: Any = super().user_info_to_username(user_info)
        try:
            return normalize_username(str(raw))
        except InvalidUsername as exc:
            raise self._refuse(f"unacceptable username: {exc}") from None

    async def check_allowed(self, username: str, auth_model: dict[str, Any] | None) -> bool:
        if auth_model is None:
            return True
        if await OAuthenticator.check_allowed(self, username, auth_model):
            return True
        if self.allowed_domains:
            user_info = (auth_model.get("auth_state") or {}).get(self.user_auth_state_key) or {}
            if not email_is_verified(user_info):
                return False
            try:
                _, domain = split_email(user_info.get("email"))
            except Refused:
                return False
            return domain in {d.lower() for d in self.allowed_domains}
        return False
