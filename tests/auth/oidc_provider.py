"""LocalOpenIDProvider: a real OpenID Connect provider (authlib + Flask) on loopback.

A genuine authorization-code + PKCE provider (authlib's AuthorizationServer
with the OpenIDCode extension, RS256 id_tokens, discovery, userinfo), run
in a thread of the test process. It has a login page with a form, so a
browser (or an HTTP client) signs in as one of its configured accounts.

It also answers Google's endpoint paths (``/oauth2/v4/token`` and
``/oauth2/v1/userinfo`` with Google's ``verified_email`` / ``hd`` fields), so
the Google authenticator can be pointed at it through ``google.api_url``.
"""

from __future__ import annotations

import contextlib
import html
import secrets
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from authlib.integrations.flask_oauth2 import AuthorizationServer
from authlib.oauth2.rfc6749 import grants
from authlib.oauth2.rfc7636 import CodeChallenge
from authlib.oidc.core import UserInfo
from authlib.oidc.core.grants import OpenIDCode
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from flask import Flask, jsonify, request
from joserfc.jwk import RSAKey
from werkzeug.serving import make_server

CLIENT_ID = "labfleet-hub"
CLIENT_SECRET = "labfleet-oidc-secret"


@dataclass
class Account:
    sub: str
    email: str
    email_verified: bool = True
    name: str = ""
    hd: str | None = None
    groups: list[str] = field(default_factory=list)
    preferred_username: str | None = None

    def claims(self) -> dict[str, Any]:
        claims: dict[str, Any] = {
            "sub": self.sub,
            "email": self.email,
            "email_verified": self.email_verified,
            "name": self.name or self.sub,
            "groups": self.groups,
            "preferred_username": self.preferred_username or self.sub,
        }
        if self.hd is not None:
            claims["hd"] = self.hd
        return claims

    def google_v1(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "id": self.sub,
            "email": self.email,
            "verified_email": self.email_verified,
            "name": self.name or self.sub,
        }
        if self.hd is not None:
            data["hd"] = self.hd
        return data


@dataclass
class _Client:
    client_id: str
    client_secret: str
    redirect_uris: list[str]

    def get_client_id(self) -> str:
        return self.client_id

    def get_default_redirect_uri(self) -> str:
        return self.redirect_uris[0]

    def get_allowed_scope(self, scope: str) -> str:
        allowed = {"openid", "email", "profile", "groups"}
        return " ".join(s for s in (scope or "").split() if s in allowed)

    def check_redirect_uri(self, redirect_uri: str) -> bool:
        return redirect_uri in self.redirect_uris

    def check_client_secret(self, client_secret: str) -> bool:
        return secrets.compare_digest(client_secret, self.client_secret)

    def check_endpoint_auth_method(self, method: str, endpoint: str) -> bool:
        return method in ("client_secret_basic", "client_secret_post")

    def check_response_type(self, response_type: str) -> bool:
        return response_type == "code"

    def check_grant_type(self, grant_type: str) -> bool:
        return grant_type == "authorization_code"


@dataclass
class _Code:
    code: str
    client_id: str
    redirect_uri: str
    scope: str
    user: str
    nonce: str | None
    code_challenge: str | None
    code_challenge_method: str | None
    auth_time: int = field(default_factory=lambda: int(time.time()))

    def get_redirect_uri(self) -> str:
        return self.redirect_uri

    def get_scope(self) -> str:
        return self.scope

    def get_nonce(self) -> str | None:
        return self.nonce

    def get_auth_time(self) -> int:
        return self.auth_time

    def get_acr(self) -> None:
        return None

    def get_amr(self) -> None:
        return None


class LocalOpenIDProvider:
    def __init__(self, accounts: list[Account]) -> None:
        self.accounts = {account.sub: account for account in accounts}
        self.redirect_uris: list[str] = []
        self.codes: dict[str, _Code] = {}
        self.tokens: dict[str, tuple[str, str]] = {}  # access token -> (user, scope)
        self.private_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        pem = self.private_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        self.jwk = RSAKey.import_key(pem, {"kid": "test-key", "use": "sig", "alg": "RS256"})
        self.app = self._make_app()
        self._server = make_server("127.0.0.1", 0, self.app, threaded=True)
        self.url = f"http://127.0.0.1:{self._server.server_port}"

    # -- authlib wiring ---------------------------------------------------------

    def _make_app(self) -> Flask:
        provider = self
        app = Flask("labfleet-test-oidc")
        app.config["OAUTH2_ERROR_URIS"] = []

        def query_client(client_id: str) -> _Client | None:
            if client_id != CLIENT_ID:
                return None
            return _Client(CLIENT_ID, CLIENT_SECRET, provider.redirect_uris)

        def save_token(token: dict[str, Any], req: Any) -> None:
            provider.tokens[token["access_token"]] = (req.user.sub, token.get("scope", ""))

        class CodeGrant(grants.AuthorizationCodeGrant):  # type: ignore[misc]
            TOKEN_ENDPOINT_AUTH_METHODS = ["client_secret_basic", "client_secret_post"]

            def save_authorization_code(self, code: str, req: Any) -> None:
                data = req.payload.data
                provider.codes[code] = _Code(
                    code=code,
                    client_id=req.client.client_id,
                    redirect_uri=req.payload.redirect_uri,
                    scope=req.scope,
                    user=req.user.sub,
                    nonce=data.get("nonce"),
                    code_challenge=data.get("code_challenge"),
                    code_challenge_method=data.get("code_challenge_method"),
                )

            def query_authorization_code(self, code: str, client: Any) -> _Code | None:
                item = provider.codes.get(code)
                return item if item and item.client_id == client.client_id else None

            def delete_authorization_code(self, authorization_code: _Code) -> None:
                provider.codes.pop(authorization_code.code, None)

            def authenticate_user(self, authorization_code: _Code) -> Account:
                return provider.accounts[authorization_code.user]

        class OpenIDExtension(OpenIDCode):  # type: ignore[misc]
            def exists_nonce(self, nonce: str, req: Any) -> bool:
                return any(code.nonce == nonce for code in provider.codes.values())

            def resolve_client_private_key(self, client: Any) -> Any:
                return provider.jwk

            def get_client_algorithm(self, client: Any) -> str:
                return "RS256"

            def get_encode_header(self, client: Any) -> dict[str, str]:
                return {"alg": "RS256", "kid": "test-key"}

            def get_client_claims(self, client: Any) -> dict[str, Any]:
                return {"iss": provider.url, "aud": [client.get_client_id()]}

            def generate_user_info(self, user: Account, scope: str) -> UserInfo:
                return UserInfo(user.claims())

        server = AuthorizationServer(app, query_client=query_client, save_token=save_token)
        server.register_grant(CodeGrant, [OpenIDExtension(), CodeChallenge(required=True)])
        self.server = server

        @app.get("/.well-known/openid-configuration")
        def discovery() -> Any:
            return jsonify(
                issuer=provider.url,
                authorization_endpoint=f"{provider.url}/authorize",
                token_endpoint=f"{provider.url}/token",
                userinfo_endpoint=f"{provider.url}/userinfo",
                jwks_uri=f"{provider.url}/jwks",
                response_types_supported=["code"],
                subject_types_supported=["public"],
                id_token_signing_alg_values_supported=["RS256"],
                code_challenge_methods_supported=["S256"],
            )

        @app.get("/jwks")
        def jwks() -> Any:
            return jsonify(keys=[provider.jwk.as_dict(private=False)])

        @app.route("/authorize", methods=["GET", "POST"])
        def authorize() -> Any:
            if request.method == "GET":
                try:
                    server.get_consent_grant(end_user=None)
                except Exception as exc:  # an invalid request shows the provider's error
                    return f"invalid authorization request: {html.escape(str(exc))}", 400
                return provider.login_page()
            account = provider.accounts.get(request.form.get("username", ""))
            if account is None:
                return provider.login_page(error="unknown account"), 403
            return server.create_authorization_response(grant_user=account)

        @app.post("/token")
        @app.post("/oauth2/v4/token")
        def token() -> Any:
            return server.create_token_response()

        @app.get("/userinfo")
        def userinfo() -> Any:
            account = provider.bearer_account()
            return jsonify(account.claims()) if account else ("", 401)

        @app.get("/oauth2/v1/userinfo")
        def google_userinfo() -> Any:
            account = provider.bearer_account()
            return jsonify(account.google_v1()) if account else ("", 401)

        return app

    def bearer_account(self) -> Account | None:
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() != "bearer" or token not in self.tokens:
            return None
        return self.accounts.get(self.tokens[token][0])

    def login_page(self, error: str = "") -> str:
        note = f'<p class="error">{html.escape(error)}</p>' if error else ""
        return (
            "<!doctype html><title>Local OpenID provider</title><h1>Sign in</h1>"
            f"{note}<form method=post>"
            '<label>Account <input name="username" id="username"></label>'
            '<button type="submit" id="sign-in">Sign in</button></form>'
        )

    @contextlib.contextmanager
    def running(self) -> Iterator[LocalOpenIDProvider]:
        thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        thread.start()
        try:
            yield self
        finally:
            self._server.shutdown()
