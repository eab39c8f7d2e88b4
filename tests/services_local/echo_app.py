"""A tiny web application that knows nothing of JupyterHub: it echoes each request as JSON.

Run by the tests as a ``services:`` entry (``python echo_app.py PORT``), so what
reaches it through labfleet's gate is visible: the path, the signed-in user the
gate names, and whether any hub cookie or token leaked through.
"""

from __future__ import annotations

import json
import os
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class Echo(BaseHTTPRequestHandler):
    def _answer(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length).decode() if length else ""
        if self.path.endswith("/big"):  # more than one chunk, streamed through the gate
            block = bytes(range(256)) * 4096  # 1 MiB
            self.send_response(200)
            self.send_header("Content-Type", "application/octet-stream")
            self.send_header("Content-Length", str(len(block) * 3))
            self.end_headers()
            for _ in range(3):
                self.wfile.write(block)
            return
        if self.path.endswith("/go-home"):
            self.send_response(302)
            self.send_header("Location", os.environ["LABFLEET_SERVICE_PREFIX"] + "home")
            self.end_headers()
            return
        data = {
            "method": self.command,
            "path": self.path,
            "user": self.headers.get("X-Forwarded-User"),
            "cookie": self.headers.get("Cookie"),
            "authorization": self.headers.get("Authorization"),
            "body": body,
            "greeting": os.environ.get("GREETING"),
            "prefix": os.environ.get("LABFLEET_SERVICE_PREFIX"),
        }
        out = json.dumps(data).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(out)))
        self.end_headers()
        self.wfile.write(out)

    do_GET = do_POST = _answer

    def log_message(self, format: str, *args: object) -> None:
        return


if __name__ == "__main__":
    ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), Echo).serve_forever()
