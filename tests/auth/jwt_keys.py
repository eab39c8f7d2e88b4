"""Signing keys the IAP tests generate, published as a JWKS (a file or a loopback URL).

Google's real IAP keys cannot sign test tokens, so the tests make their own
P-256 keys and point the authenticator at them, exactly as it points at
Google's JWKS in production.
"""

from __future__ import annotations

import base64
import contextlib
import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import ec

AUDIENCE = "/projects/123456/global/backendServices/789"
ISSUER = "https://cloud.google.com/iap"


class SigningKey:
    def __init__(self, kid: str) -> None:
        self.kid = kid
        self.private = ec.generate_private_key(ec.SECP256R1())

    def jwk(self) -> dict[str, Any]:
        data: dict[str, Any] = json.loads(
            jwt.algorithms.ECAlgorithm.to_jwk(self.private.public_key())
        )
        data.update({"kid": self.kid, "alg": "ES256", "use": "sig"})
        return data

    def token(self, email: str | None, **overrides: Any) -> str:
        now = int(time.time())
        claims: dict[str, Any] = {
            "aud": AUDIENCE,
            "iss": ISSUER,
            "iat": now,
            "exp": now + 600,
            "sub": f"accounts.google.com:{abs(hash(email))}",
            "email": email,
        }
        claims.update(overrides)
        claims = {k: v for k, v in claims.items() if v is not None}
        return jwt.encode(claims, self.private, algorithm="ES256", headers={"kid": self.kid})


def jwks_document(*keys: SigningKey) -> bytes:
    return json.dumps({"keys": [key.jwk() for key in keys]}).encode()


def unsigned_token(email: str, kid: str) -> str:
    """An ``alg: none`` token (must always be refused)."""

    def part(data: dict[str, Any]) -> str:
        raw = json.dumps(data).encode()
        return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()

    now = int(time.time())
    claims = {"aud": AUDIENCE, "iss": ISSUER, "iat": now, "exp": now + 600, "sub": "x"}
    return f"{part({'alg': 'none', 'kid': kid})}.{part({**claims, 'email': email})}."


class JwksServer:
    """A loopback HTTP server publishing a JWKS that the test can rotate."""

    def __init__(self, *keys: SigningKey) -> None:
        self.document = jwks_document(*keys)
        self.requests = 0
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                server.requests += 1
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(server.document)))
                self.end_headers()
                self.wfile.write(server.document)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/jwks.json"

    def publish(self, *keys: SigningKey) -> None:
        self.document = jwks_document(*keys)

    @contextlib.contextmanager
    def running(self) -> Iterator[JwksServer]:
        thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        thread.start()
        try:
            yield self
        finally:
            self.httpd.shutdown()
            self.httpd.server_close()
