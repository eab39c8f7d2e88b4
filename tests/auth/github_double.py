"""GitHubDouble: a local HTTP server answering the GitHub endpoints the authenticator calls.

This is a test double (github.com cannot be reached from the test machines),
configured as a GitHub Enterprise host (``github_url``), which is how the
authenticator is pointed at it. It implements only what sign-in uses:

* ``GET  /login/oauth/authorize``  — "the user clicks Authorize": redirects back
  with a code for :attr:`GitHubDouble.next_login`;
* ``POST /login/oauth/access_token`` — checks client id, secret, code;
* ``GET  /api/v3/user``, ``/user/emails``, ``/user/orgs`` (paginated with a
  ``Link`` header, two per page), ``/user/teams`` — checks the bearer token.
"""

from __future__ import annotations

import contextlib
import json
import secrets
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

CLIENT_ID = "labfleet-test-client"
CLIENT_SECRET = "labfleet-test-secret"


@dataclass
class GitHubUser:
    login: str
    id: int
    name: str | None = None
    email: str | None = None  # public e-mail (None: private)
    primary_email: str | None = None
    orgs: list[tuple[str, int]] = field(default_factory=list)
    teams: list[tuple[str, str]] = field(default_factory=list)  # (org, team slug)


class GitHubDouble:
    def __init__(self, users: list[GitHubUser]) -> None:
        self.users = {user.login: user for user in users}
        self.next_login: str | None = None
        self.codes: dict[str, str] = {}
        self.tokens: dict[str, str] = {}
        self.requests: list[str] = []
        double = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                pass

            def _json(self, status: int, body: Any, headers: dict[str, str] | None = None) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                for key, value in (headers or {}).items():
                    self.send_header(key, value)
                self.end_headers()
                self.wfile.write(data)

            def _user(self) -> GitHubUser | None:
                auth = self.headers.get("Authorization", "")
                scheme, _, token = auth.partition(" ")
                login = double.tokens.get(token) if scheme.lower() == "bearer" else None
                return double.users.get(login or "")

            def do_GET(self) -> None:
                parts = urlsplit(self.path)
                query = parse_qs(parts.query)
                double.requests.append(f"GET {parts.path}")
                if parts.path == "/login/oauth/authorize":
                    self._authorize(query)
                    return
                user = self._user()
                if user is None:
                    self._json(401, {"message": "Bad credentials"})
                    return
                if parts.path == "/api/v3/user":
                    self._json(
                        200,
                        {
                            "login": user.login,
                            "id": user.id,
                            "name": user.name,
                            "email": user.email,
                        },
                    )
                elif parts.path == "/api/v3/user/emails":
                    emails = [{"email": user.primary_email, "primary": True, "verified": True}]
                    self._json(200, emails if user.primary_email else [])
                elif parts.path == "/api/v3/user/orgs":
                    self._orgs(user, int(query.get("page", ["1"])[0]))
                elif parts.path == "/api/v3/user/teams":
                    org_ids = dict(user.orgs)
                    teams = [
                        {"slug": slug, "organization": {"login": org, "id": org_ids.get(org, 1)}}
                        for org, slug in user.teams
                    ]
                    self._json(200, teams)
                else:
                    self._json(404, {"message": "Not Found"})

            def _authorize(self, query: dict[str, list[str]]) -> None:
                login = double.next_login
                if query.get("client_id") != [CLIENT_ID] or login is None:
                    self._json(400, {"message": "bad authorize request"})
                    return
                code = secrets.token_hex(8)
                double.codes[code] = login
                target = (
                    query["redirect_uri"][0]
                    + "?"
                    + urlencode({"code": code, "state": query.get("state", [""])[0]})
                )
                self.send_response(302)
                self.send_header("Location", target)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def _orgs(self, user: GitHubUser, page: int) -> None:
                per_page = 2
                chunk = user.orgs[(page - 1) * per_page : page * per_page]
                headers = {}
                if page * per_page < len(user.orgs):
                    host = self.headers.get("Host")
                    headers["Link"] = (
                        f'<http://{host}/api/v3/user/orgs?per_page=2&page={page + 1}>; rel="next"'
                    )
                self._json(200, [{"login": org, "id": ident} for org, ident in chunk], headers)

            def do_POST(self) -> None:
                parts = urlsplit(self.path)
                double.requests.append(f"POST {parts.path}")
                length = int(self.headers.get("Content-Length", "0"))
                form = parse_qs(self.rfile.read(length).decode())
                if parts.path != "/login/oauth/access_token":
                    self._json(404, {"message": "Not Found"})
                    return
                code = form.get("code", [""])[0]
                if (
                    form.get("client_id") != [CLIENT_ID]
                    or form.get("client_secret") != [CLIENT_SECRET]
                    or code not in double.codes
                ):
                    self._json(200, {"error": "bad_verification_code"})
                    return
                token = "gho_" + secrets.token_hex(16)
                double.tokens[token] = double.codes.pop(code)
                self._json(
                    200,
                    {
                        "access_token": token,
                        "token_type": "bearer",
                        "scope": "read:org,read:user,user:email",
                    },
                )

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"

    @contextlib.contextmanager
    def running(self) -> Iterator[GitHubDouble]:
        thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        thread.start()
        try:
            yield self
        finally:
            self.httpd.shutdown()
            self.httpd.server_close()
