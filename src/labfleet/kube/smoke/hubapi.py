"""The hub's REST API and a user's kernel, over the public access path (effects).

Plain ``urllib`` for REST and tornado's websocket client for the kernel channel: both
ship with the hub's dependencies, so ``labfleet smoke`` needs nothing extra.
"""

from __future__ import annotations

import asyncio
import json
import ssl
import urllib.error
import urllib.request
import uuid
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from tornado.httpclient import HTTPRequest
from tornado.websocket import websocket_connect


class HubApiError(RuntimeError):
    def __init__(self, method: str, path: str, code: int, body: str) -> None:
        super().__init__(f"{method} {path}: HTTP {code} {body[:300]}")
        self.code = code


@dataclass(frozen=True)
class HubApi:
    """``base_url``: the public URL (ends in ``/``), hub base_url included."""

    base_url: str
    token: str
    timeout: float = 30.0
    #: False only for a self-signed certificate the operator asked to accept
    verify_tls: bool = True

    def _context(self) -> ssl.SSLContext | None:
        if self.verify_tls:
            return None
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        return context

    def call(self, method: str, path: str, body: Any = None, token: str | None = None) -> Any:
        """``path`` below ``/hub/api``; the decoded JSON answer (None when empty)."""
        return self.request(method, "hub/api" + path, body, token)

    def request(self, method: str, path: str, body: Any = None, token: str | None = None) -> Any:
        """``path`` below ``base_url``; the decoded JSON answer (None when empty)."""
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(  # noqa: S310 - the operator's own URL
            self.base_url + path, data=data, method=method
        )
        request.add_header("Authorization", f"token {token or self.token}")
        if data is not None:
            request.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(  # noqa: S310
                request, timeout=self.timeout, context=self._context()
            ) as response:
                raw = response.read()
        except urllib.error.HTTPError as error:
            detail = error.read().decode(errors="replace")
            raise HubApiError(method, path, error.code, detail) from None
        return json.loads(raw) if raw else None

    def user(self, name: str) -> dict[str, Any] | None:
        try:
            found: dict[str, Any] = self.call("GET", f"/users/{quote(name)}")
        except HubApiError as error:
            if error.code == 404:
                return None
            raise
        return found

    def server_url(self, name: str) -> str:
        return f"{self.base_url}user/{quote(name)}/"


def execute_request(code: str, username: str) -> dict[str, Any]:
    """Pure: a Jupyter ``execute_request`` shell message for ``code`` (no history, no stdin)."""
    return {
        "header": {
            "msg_id": uuid.uuid4().hex,
            "username": username,
            "session": uuid.uuid4().hex,
            "msg_type": "execute_request",
            "version": "5.3",
        },
        "parent_header": {},
        "metadata": {},
        "channel": "shell",
        "content": {
            "code": code,
            "silent": False,
            "store_history": False,
            "user_expressions": {},
            "allow_stdin": False,
        },
    }


async def _execute(ws_url: str, token: str, code: str, verify_tls: bool) -> str:
    request = HTTPRequest(
        ws_url, headers={"Authorization": f"token {token}"}, validate_cert=verify_tls
    )
    connection = await websocket_connect(request, max_message_size=64 * 1024 * 1024)
    message = execute_request(code, "labfleet-smoke")
    msg_id = message["header"]["msg_id"]
    out: list[str] = []
    try:
        await connection.write_message(json.dumps(message))
        while True:
            raw = await connection.read_message()
            if raw is None:
                raise RuntimeError("the kernel's websocket closed before the code finished")
            reply = json.loads(raw)
            if (reply.get("parent_header") or {}).get("msg_id") != msg_id:
                continue
            kind = reply.get("msg_type")
            if kind == "stream":
                out.append(reply["content"]["text"])
            elif kind == "error":
                content = reply["content"]
                out.append(f"{content['ename']}: {content['evalue']}")
                raise RuntimeError("the code raised " + "".join(out)[-300:])
            elif kind == "status" and reply["content"]["execution_state"] == "idle":
                return "".join(out)
    finally:
        connection.close()


def run_in_kernel(api: HubApi, user: str, token: str, code: str, timeout: float) -> str:
    """Start a kernel on ``user``'s server (REST), run ``code`` (websocket), stop it."""
    server = HubApi(api.server_url(user), token, api.timeout, api.verify_tls)
    kernel = server.request("POST", "api/kernels", {})
    try:
        ws_url = server.base_url.replace("http", "ws", 1) + f"api/kernels/{kernel['id']}/channels"
        return asyncio.run(asyncio.wait_for(_execute(ws_url, token, code, api.verify_tls), timeout))
    finally:
        server.request("DELETE", f"api/kernels/{kernel['id']}")
