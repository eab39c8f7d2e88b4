"""``python -m labfleet.services.gate``: the hub's login in front of an application.

An entry of ``services:`` is an application that knows nothing of JupyterHub.
The gate is the JupyterHub service for it: it signs the browser in through
the hub's OAuth (``HubOAuthenticated``; RBAC decides who may: the
``access:services!service=NAME`` scope, given to every user or only to
admins), then forwards the request to the application and its answer back.
The application never sees the hub's cookies or tokens; it gets the
signed-in name in ``X-Forwarded-User``.

Requests that change something (POST, PUT, ...) from another site are
refused by their ``Origin``/``Sec-Fetch-Site`` headers, since the
application knows nothing of the hub's XSRF tokens.

With ``LABFLEET_GATE_COMMAND`` (``labfleet up``) the gate also runs the
application as its child, which dies with it; when the application exits the
gate exits too, and the hub restarts the service. On Kubernetes the
application is the other container of the gate's pod.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from jupyterhub.services.auth import HubOAuth, HubOAuthCallbackHandler, HubOAuthenticated
from tornado import httpclient, web, websocket

#: Hop-by-hop headers (RFC 9110 7.6.1) and what the application must never get.
_DROP_REQUEST = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-connection",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "host",
        "cookie",
        "authorization",
        "content-length",
        "x-forwarded-user",
    }
)
_DROP_RESPONSE = frozenset(
    {"connection", "keep-alive", "transfer-encoding", "content-length", "trailer", "upgrade"}
)
_SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


@dataclass(frozen=True)
class GateSettings:
    name: str
    prefix: str  # /services/NAME/ (under the hub's base URL)
    upstream: str  # http://127.0.0.1:PORT
    url_prefix: str | None  # the application's own base path, if it differs
    bind_host: str
    bind_port: int
    api_token: str
    command: list[str] | None
    child_env: dict[str, str]

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> GateSettings:
        name = env["JUPYTERHUB_SERVICE_NAME"]
        bind = urlsplit(env.get("LABFLEET_GATE_BIND") or env["JUPYTERHUB_SERVICE_URL"])
        command = env.get("LABFLEET_GATE_COMMAND")
        return cls(
            name=name,
            prefix=env.get("JUPYTERHUB_SERVICE_PREFIX") or f"/services/{name}/",
            upstream=env["LABFLEET_GATE_UPSTREAM"].rstrip("/"),
            url_prefix=env.get("LABFLEET_GATE_URL_PREFIX") or None,
            bind_host=bind.hostname or "127.0.0.1",
            bind_port=bind.port or 8000,
            api_token=env["JUPYTERHUB_API_TOKEN"],
            command=json.loads(command) if command else None,
            child_env=json.loads(env.get("LABFLEET_GATE_ENV") or "{}"),
        )

    def upstream_path(self, path: str) -> str:
        """``/services/NAME/x`` as the application expects it."""
        if self.url_prefix is None or not path.startswith(self.prefix):
            return path
        return self.url_prefix + path[len(self.prefix) :]

    def public_location(self, location: str) -> str:
        """A redirect of the application, back under ``/services/NAME/``."""
        if self.url_prefix is None:
            return location
        for base in (self.upstream, ""):
            if location.startswith(base + self.url_prefix):
                return self.prefix + location[len(base + self.url_prefix) :]
        return location


def cross_site(headers: Mapping[str, str], host: str) -> bool:
    """A state-changing request another site made the browser send."""
    if headers.get("Sec-Fetch-Site", "same-origin") in ("cross-site", "same-site"):
        return True
    origin = headers.get("Origin")
    return bool(origin) and origin != "null" and urlsplit(origin).netloc != host


class _Relay:
    """Streams the application's answer as it arrives: status and headers, then each chunk.

    A large download or an event stream is never held in memory; tornado's
    ``header_callback`` hands over the raw head line by line.
    """

    def __init__(self, handler: web.RequestHandler, gate: GateSettings) -> None:
        self.handler, self.gate = handler, gate
        self.started = False
        self._status: tuple[int, str] | None = None
        self._headers: list[tuple[str, str]] = []

    def header_line(self, line: str) -> None:
        line = line.rstrip("\r\n")
        if line.startswith("HTTP/"):  # a new head (after a 100 Continue, too)
            parts = line.split(" ", 2)
            self._status = (int(parts[1]), parts[2] if len(parts) > 2 else "")
            self._headers = []
        elif line and self._status is not None:
            name, _, value = line.partition(":")
            self._headers.append((name.strip(), value.strip()))
        elif not line and self._status is not None and self._status[0] >= 200:
            self.start(*self._status, self._headers)

    def start(self, code: int, reason: str | None, headers: list[tuple[str, str]]) -> None:
        if self.started:
            return
        self.started = True
        handler = self.handler
        handler.set_status(code, reason or None)
        handler._headers.clear()  # tornado's defaults (Content-Type, Server) are not the app's
        for name, value in headers:
            if name.lower() in _DROP_RESPONSE:
                continue
            if name.lower() == "location":
                value = self.gate.public_location(value)
            handler.add_header(name, value)

    def chunk(self, data: bytes) -> None:
        if not self.started:
            self.start(*(self._status or (502, "Bad Gateway")), self._headers)
        if self.handler.request.method != "HEAD" and data:
            self.handler.write(data)
            self.handler.flush()


class GateHandler(HubOAuthenticated, websocket.WebSocketHandler):  # type: ignore[misc]
    """Plain requests are forwarded as they come; a websocket upgrade is relayed frame by frame.

    Tornado's own ``check_origin`` refuses a websocket opened by another site's page.
    """

    SUPPORTED_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")
    _upstream: websocket.WebSocketClientConnection | None = None

    def check_xsrf_cookie(self) -> None:
        """The application has no hub XSRF token; :func:`cross_site` guards instead."""

    @web.authenticated
    async def _forward(self) -> None:
        gate: GateSettings = self.settings["labfleet_gate"]
        request = self.request
        if request.method not in _SAFE_METHODS and cross_site(request.headers, request.host):
            raise web.HTTPError(403, "cross-site request refused")
        headers = {k: v for k, v in request.headers.get_all() if k.lower() not in _DROP_REQUEST}
        headers["X-Forwarded-User"] = self.current_user["name"]
        headers["X-Forwarded-Host"] = request.host
        headers["X-Forwarded-Proto"] = request.protocol
        target = gate.upstream + gate.upstream_path(request.path)
        if request.query:
            target += "?" + request.query
        body = request.body if request.method not in ("GET", "HEAD", "OPTIONS") else None
        if request.method in ("POST", "PUT", "PATCH") and body is None:
            body = b""
        relay = _Relay(self, gate)
        client = httpclient.AsyncHTTPClient()
        try:
            response = await client.fetch(
                target,
                method=request.method,
                headers=headers,
                body=body,
                follow_redirects=False,
                decompress_response=False,
                raise_error=False,
                request_timeout=3600,  # long downloads and event streams
                allow_nonstandard_methods=True,
                header_callback=relay.header_line,
                streaming_callback=relay.chunk,
            )
        except OSError:
            response = None
        if not relay.started:
            if response is None or response.code == 599:
                raise web.HTTPError(502, f"service {gate.name} is not answering (starting?)")
            relay.start(response.code, response.reason, list(response.headers.get_all()))
        await self.finish()

    head = post = put = patch = delete = options = _forward

    async def get(self, *args: Any, **kwargs: Any) -> None:
        websocket_upgrade = self.request.headers.get("Upgrade", "").lower() == "websocket"
        pending = self._upgrade(*args, **kwargs) if websocket_upgrade else self._forward()
        if pending is not None:  # web.authenticated returns None when it redirects to login
            await pending

    @web.authenticated
    async def _upgrade(self, *args: Any, **kwargs: Any) -> None:
        gate: GateSettings = self.settings["labfleet_gate"]
        target = "ws" + gate.upstream[len("http") :] + gate.upstream_path(self.request.path)
        if self.request.query:
            target += "?" + self.request.query
        headers = {"X-Forwarded-User": self.current_user["name"]}
        protocols = self.request.headers.get("Sec-WebSocket-Protocol")
        try:
            self._upstream = await websocket.websocket_connect(
                httpclient.HTTPRequest(target, headers=headers),
                on_message_callback=self._from_upstream,
                subprotocols=[p.strip() for p in protocols.split(",")] if protocols else None,
            )
        except (OSError, httpclient.HTTPClientError):
            raise web.HTTPError(502, f"service {gate.name} refused the websocket") from None
        await websocket.WebSocketHandler.get(self, *args, **kwargs)

    def select_subprotocol(self, subprotocols: list[str]) -> str | None:
        chosen = self._upstream.selected_subprotocol if self._upstream else None
        return chosen if chosen in subprotocols else None

    def _from_upstream(self, message: str | bytes | None) -> None:
        if message is None:  # the application closed it
            self.close()
            return
        try:
            self.write_message(message, binary=isinstance(message, bytes))
        except websocket.WebSocketClosedError:
            if self._upstream is not None:
                self._upstream.close()

    async def on_message(self, message: str | bytes) -> None:
        if self._upstream is not None:
            await self._upstream.write_message(message, binary=isinstance(message, bytes))

    def on_close(self) -> None:
        if self._upstream is not None:
            self._upstream.close()


def make_app(gate: GateSettings) -> web.Application:
    auth = HubOAuth(
        api_token=gate.api_token,
        cache_max_age=60,
        access_scopes={f"access:services!service={gate.name}"},
    )
    return web.Application(
        [
            (gate.prefix + "oauth_callback", HubOAuthCallbackHandler),
            (gate.prefix.rstrip("/"), web.RedirectHandler, {"url": gate.prefix}),
            (gate.prefix + ".*", GateHandler),
        ],
        hub_auth=auth,
        cookie_secret=os.urandom(32),
        labfleet_gate=gate,
        disable_check_xsrf=True,
    )


def _start_child(gate: GateSettings) -> subprocess.Popen[bytes] | None:
    if not gate.command:
        return None
    from labfleet.up.die_with_parent import set_parent_death_signal

    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("JUPYTERHUB_", "LABFLEET_"))},
        **gate.child_env,
        "LABFLEET_SERVICE_PREFIX": gate.url_prefix or gate.prefix,
    }
    return subprocess.Popen(  # the admin's configured command, no shell
        gate.command, env=env, preexec_fn=set_parent_death_signal
    )


async def _main() -> int:
    gate = GateSettings.from_env(os.environ)
    child = _start_child(gate)
    make_app(gate).listen(gate.bind_port, gate.bind_host)
    print(f"gate for {gate.name}: {gate.prefix} -> {gate.upstream}", file=sys.stderr, flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    waits: list[asyncio.Future[Any]] = [asyncio.ensure_future(stop.wait())]
    if child is not None:
        waits.append(asyncio.ensure_future(asyncio.to_thread(child.wait)))
    await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
    if child is None:
        return 0
    if child.poll() is None:
        child.terminate()
        try:
            await asyncio.to_thread(child.wait, 10)
        except subprocess.TimeoutExpired:
            child.kill()
            await asyncio.to_thread(child.wait)
        return 0
    print(f"service {gate.name} exited with {child.returncode}", file=sys.stderr, flush=True)
    return 1


def main() -> None:
    sys.exit(asyncio.run(_main()))


if __name__ == "__main__":
    main()
