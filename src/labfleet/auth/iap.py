"""Google Cloud IAP: every browser request is authenticated from ``x-goog-iap-jwt-assertion``.

Behind Google's load balancer, IAP signs each request with an ES256 JWT.
The hub trusts nothing else: no login form, no header naming a user. The
token's signature (JWKS, cached), ``aud``, ``iss``, ``exp``/``iat`` (small
skew) are checked, then the e-mail address is mapped to a username and the
allow/admin rules are applied. ``refresh_user`` re-checks the header on every
cookie-authenticated request, so a browser whose IAP identity changes (or
whose header disappears) is signed out rather than kept as the old user.

Refusals are 401 (no or invalid assertion) or 403 (valid, but not allowed);
log lines carry the reason, never the token.
"""

from __future__ import annotations

from typing import Any

import jwt
from jupyterhub.handlers import BaseHandler
from tornado import web
from traitlets import Bool, Float, Integer, List, Unicode, default

from labfleet.auth.email_identity import Decision, EmailRules, Refused, decide
from labfleet.auth.jwks import JwksError, KeySet
from labfleet.auth.normalizing import NormalizingAuthenticator

IAP_HEADER = "x-goog-iap-jwt-assertion"
IAP_ISSUER = "https://cloud.google.com/iap"
_MAX_TOKEN = 16 * 1024


def read_assertion(values: list[str]) -> str:
    """The single assertion from the header values (Refused 401 otherwise)."""
    if not values:
        raise Refused(401, "no IAP assertion header")
    if len(values) > 1:
        raise Refused(401, "more than one IAP assertion header")
    token = values[0].strip()
    if not token or len(token) > _MAX_TOKEN or "," in token:
        raise Refused(401, "malformed IAP assertion")
    return token


def assertion_kid(token: str) -> str:
    """The ``kid`` of an ES256 token (Refused 401 for any other algorithm, e.g. ``none``)."""
    try:
        header = jwt.get_unverified_header(token)
    except jwt.PyJWTError:
        raise Refused(401, "malformed IAP assertion") from None
    if header.get("alg") != "ES256":
        raise Refused(401, f"IAP assertion algorithm {str(header.get('alg'))[:20]!r} refused")
    kid = header.get("kid")
    if not isinstance(kid, str) or not kid or len(kid) > 200:
        raise Refused(401, "IAP assertion has no key id")
    return kid


def verify_claims(
    token: str, key: Any, audience: str, issuer: str, leeway: float
) -> dict[str, Any]:
    """Signature, audience, issuer and lifetime; the claims, or Refused(401) with the reason."""
    try:
        claims: dict[str, Any] = jwt.decode(
            token,
            key=key,
            algorithms=["ES256"],
            audience=audience,
            issuer=issuer,
            leeway=leeway,
            options={"require": ["exp", "iat", "aud", "iss", "sub", "email"]},
        )
    except jwt.ExpiredSignatureError:
        raise Refused(401, "IAP assertion expired") from None
    except jwt.ImmatureSignatureError:
        raise Refused(401, "IAP assertion issued in the future") from None
    except jwt.InvalidAudienceError:
        raise Refused(401, "IAP assertion has the wrong audience") from None
    except jwt.InvalidIssuerError:
        raise Refused(401, "IAP assertion has the wrong issuer") from None
    except jwt.InvalidSignatureError:
        raise Refused(401, "IAP assertion signature does not verify") from None
    except jwt.MissingRequiredClaimError as exc:
        raise Refused(401, f"IAP assertion lacks the {exc.claim!r} claim") from None
    except jwt.PyJWTError:
        raise Refused(401, "IAP assertion is invalid") from None
    return claims


class IapLoginHandler(BaseHandler):  # type: ignore[misc]
    """``/hub/login``: sign in from the header alone; there is no form."""

    async def get(self) -> None:
        user = await self.login_user()
        if user is None:
            raise web.HTTPError(403, "Sign-in refused.")
        self.redirect(self.get_next_url(user))

    async def post(self) -> None:
        await self.get()


class IapAuthenticator(NormalizingAuthenticator):
    """Authenticate from Google IAP's signed header on every request."""

    audience = Unicode(config=True, help="Expected 'aud' of the assertion.")
    jwks = Unicode(
        "https://www.gstatic.com/iap/verify/public_key-jwk",
        config=True,
        help="JWKS URL (https) or file path.",
    )
    issuer = Unicode(IAP_ISSUER, config=True)
    leeway = Integer(30, config=True, help="Allowed clock skew in seconds.")
    jwks_min_refresh = Float(
        30, config=True, help="Seconds between key-set refreshes caused by unknown key ids."
    )
    header_name = Unicode(IAP_HEADER, config=True)
    allowed_domains = List(Unicode(), config=True, help="E-mail domains allowed to sign in.")
    strip_domain = Bool(False, config=True)
    # Re-check the header on every cookie-authenticated request.
    auth_refresh_age = Float(1e-6, config=True)

    @default("auto_login")
    def _auto_login(self) -> bool:
        return True

    @default("allow_existing_users")
    def _no_implicit_allow(self) -> bool:
        return False

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._keys: KeySet | None = None

    @property
    def keys(self) -> KeySet:
        if self._keys is None:
            self._keys = KeySet(self.jwks, min_refresh_interval=self.jwks_min_refresh)
        return self._keys

    def get_handlers(self, app: Any) -> list[tuple[str, Any]]:
        return [("/login", IapLoginHandler)]

    def rules(self) -> EmailRules:
        return EmailRules(
            allowed_users=frozenset(self.allowed_users),
            allowed_domains=frozenset(d.lower() for d in self.allowed_domains),
            admin_users=frozenset(self.admin_users),
            allow_all=bool(self.allow_all),
            strip_domain=self.strip_domain,
        )

    async def identify(self, handler: Any) -> Decision:
        """Who the request's assertion names (Refused 401/403 with the reason)."""
        if not self.audience:
            raise Refused(401, "IAP audience is not configured")
        token = read_assertion(handler.request.headers.get_list(self.header_name))
        kid = assertion_kid(token)
        try:
            key = await self.keys.key(kid)
        except JwksError as exc:
            self.log.error("IAP key set unavailable: %s", exc)
            raise Refused(401, "IAP keys unavailable") from None
        if key is None:
            raise Refused(401, "IAP assertion signed by an unknown key")
        claims = verify_claims(token, key, self.audience, self.issuer, self.leeway)
        return decide(claims.get("email"), self.rules())

    async def authenticate(self, handler: Any, data: Any = None) -> dict[str, Any]:
        try:
            decision = await self.identify(handler)
        except Refused as refusal:
            self.log.warning(
                "IAP sign-in refused from %s: %s",
                self._remote_address(handler),
                refusal.reason,
            )
            raise web.HTTPError(refusal.status, refusal.reason) from None
        return {
            "name": decision.name,
            "admin": decision.admin or None,
            "auth_state": None,
        }

    async def check_allowed(self, username: str, authentication: Any = None) -> bool:
        return True  # ``identify`` already applied the allow rules

    async def refresh_user(self, user: Any, handler: Any = None) -> bool:
        if handler is None or getattr(handler, "_token_authenticated", False):
            return True  # API tokens do not pass through IAP
        try:
            decision = await self.identify(handler)
        except Refused as refusal:
            self.log.info("IAP session of %s ended: %s", user.name, refusal.reason)
            return self._end_session(handler)
        if decision.name != user.name:
            self.log.info("IAP identity changed from %s; signing in again", user.name)
            return self._end_session(handler)
        return True

    def _end_session(self, handler: Any) -> bool:
        """End the browser's hub session and return False ("sign in again").

        Like JupyterHub's logout, clearing the login cookie also deletes the
        OAuth tokens of this session, so the previous identity's cookies for
        its servers stop working once the servers' token cache expires.

        JupyterHub 6.1 reads ``handler._token_authenticated`` after a False
        refresh but sets it only for token requests; without setting it the
        hub logs a traceback (the outcome, no current user, is the same).
        """
        try:
            handler.clear_login_cookie()
        except Exception:  # the session ends regardless; this is best effort
            self.log.exception("Could not clear the previous IAP session")
        if not hasattr(handler, "_token_authenticated"):
            handler._token_authenticated = False
        return False
