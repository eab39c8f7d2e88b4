"""The plain-HTTP listener: HTTP-01 answers under /.well-known/acme-challenge/, 301 elsewhere.

It runs in the ``labfleet up`` supervisor (a thread), so ACME can answer
challenges before the proxy has a certificate to start with, and keeps
redirecting browsers that type ``http://`` afterwards.
"""

from __future__ import annotations

import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import ClassVar

CHALLENGE_PREFIX = "/.well-known/acme-challenge/"
_HOST = re.compile(r"^[A-Za-z0-9.-]{1,253}$")
_TOKEN = re.compile(r"^[A-Za-z0-9_-]{1,256}$")


def redirect_location(host_header: str, path: str, https_port: int) -> str | None:
    """``https://host[:port]path`` or None for a Host that is not a plain DNS name/IPv4."""
    host = host_header.rsplit(":", 1)[0] if host_header.count(":") == 1 else host_header
    if not _HOST.match(host) or not path.startswith("/"):
        return None
    port = "" if https_port == 443 else f":{https_port}"
    return f"https://{host}{port}{path}"


class Challenges:
    """Token → key authorization, shared between the ACME client and the listener."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._answers: dict[str, str] = {}

    def put(self, token: str, validation: str) -> None:
        with self._lock:
            self._answers[token] = validation

    def drop(self, token: str) -> None:
        with self._lock:
            self._answers.pop(token, None)

    def get(self, token: str) -> str | None:
        with self._lock:
            return self._answers.get(token)


class _Handler(BaseHTTPRequestHandler):
    challenges: ClassVar[Challenges]
    https_port: ClassVar[int]
    server_version = "labfleet"
    sys_version = ""

    def do_GET(self) -> None:
        path = self.path.split("?", 1)[0]
        if path.startswith(CHALLENGE_PREFIX):
            token = path[len(CHALLENGE_PREFIX) :]
            answer = self.challenges.get(token) if _TOKEN.match(token) else None
            if answer is None:
                self._reply(404, b"no such challenge\n")
            else:
                self._reply(200, answer.encode("ascii"))
            return
        to = redirect_location(self.headers.get("Host", ""), self.path, self.https_port)
        if to is None:
            self._reply(400, b"bad Host header\n")
            return
        self.send_response(301)
        self.send_header("Location", to)
        self.send_header("Content-Length", "0")
        self.end_headers()

    do_HEAD = do_GET

    def do_POST(self) -> None:
        self.do_GET()

    def _reply(self, status: int, body: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass  # the proxy logs real traffic; this one sees only challenges and redirects


class HttpResponder:
    """A threaded server on ``(ip, port)``; ``start`` binds (errors surface at once)."""

    def __init__(self, ip: str, port: int, https_port: int, challenges: Challenges) -> None:
        handler = type("Handler", (_Handler,), {"challenges": challenges, "https_port": https_port})
        self.server = ThreadingHTTPServer((ip, port), handler)
        self.server.daemon_threads = True
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self._thread.join(5)
