"""The smallest "user server": answers 200 on the port JupyterHub assigned.

Policy tests need real processes to start (and, for forbidden profiles, to
*not* start); a full JupyterLab would only add seconds per spawn.
"""

from __future__ import annotations

import json
import os
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from urllib.parse import urlsplit


class Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = os.environ.get("LABFLEET_PROFILE", "").encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


def record_environment() -> None:
    """Write the variables labfleet sets to $HOME/server-env.json, for the test to read."""
    keys = [k for k in os.environ if k.startswith(("GIT_", "GITHUB_", "LABFLEET_"))]
    home = Path(os.environ.get("HOME", "."))
    (home / "server-env.json").write_text(json.dumps({k: os.environ[k] for k in keys}))


if __name__ == "__main__":
    record_environment()
    url = urlsplit(os.environ["JUPYTERHUB_SERVICE_URL"])
    HTTPServer((url.hostname or "127.0.0.1", url.port or 0), Handler).serve_forever()
