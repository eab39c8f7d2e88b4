"""CHP's REST API (``/api/routes``) and ``/metrics`` on the API port.

Every request must carry ``Authorization: token <CONFIGPROXY_AUTH_TOKEN>``
exactly once and byte for byte (constant-time compare); anything else is a
403 with no detail. The API is low-traffic, so it is a plain streams server.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import re
from collections.abc import Callable
from typing import Any, Protocol
from urllib.parse import parse_qs

from labfleet.proxy import messages
from labfleet.proxy.http_parse import MAX_HEAD, HttpError, parse_request_head
from labfleet.proxy.metrics import CONTENT_TYPE as METRICS_CONTENT_TYPE
from labfleet.proxy.metrics import Counters, render
from labfleet.proxy.paths import split_target
from labfleet.proxy.routes import (
    RouteError,
    RouteKey,
    RouteTable,
    key_to_path,
    parse_timestamp,
    path_to_key,
)
from labfleet.proxy.targets import Target

log = logging.getLogger("labfleet.proxy.api")

_AUTH_RE = re.compile(rb"\r\nauthorization:([^\r\n]*)", re.IGNORECASE)
_MAX_BODY = 1 << 20
_IDLE_TIMEOUT = 120.0
_PREFIX = b"/api/routes"


class RouteStore(Protocol):
    """Where API changes go: the local table, and (multi-worker) every worker."""

    table: RouteTable

    def add(self, key: RouteKey, target: str, data: dict[str, Any]) -> None: ...

    def remove(self, key: RouteKey) -> bool: ...

    def counters(self) -> Counters: ...


def token_matches(raw_head: bytes, token: str) -> bool:
    """Exactly one Authorization header whose raw value is ``token <token>``.

    The raw value is used on purpose (trailing whitespace is not stripped):
    the only client is JupyterHub, which sends the exact form.
    """
    if not token:
        return False
    found = _AUTH_RE.findall(b"\r\n" + raw_head)
    if len(found) != 1:
        return False
    value: bytes = found[0].lstrip(b" \t")
    if not value.startswith(b"token "):
        return False
    return hmac.compare_digest(value[6:], token.encode("utf-8"))


class ApiServer:
    def __init__(
        self,
        store: RouteStore,
        token: str,
        *,
        host_routing: bool,
        metrics_public: bool = False,
        on_request: Callable[[], None] | None = None,
    ) -> None:
        self.store = store
        self.token = token
        self.host_routing = host_routing
        self.metrics_public = metrics_public
        self.on_request = on_request
        self.connections: set[asyncio.StreamWriter] = set()

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections.add(writer)
        try:
            while True:
                try:
                    raw = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), _IDLE_TIMEOUT)
                except (asyncio.IncompleteReadError, TimeoutError, ConnectionError):
                    return
                except asyncio.LimitOverrunError:
                    writer.write(_plain(431, "request head too large", close=True))
                    return
                if len(raw) > MAX_HEAD:
                    writer.write(_plain(431, "request head too large", close=True))
                    return
                keep = await self._one(raw[:-4], reader, writer)
                await writer.drain()
                if not keep:
                    return
        except (ConnectionError, asyncio.CancelledError):
            return  # shutdown cancels idle API connections: not an error
        finally:
            self.connections.discard(writer)
            writer.close()

    async def _one(
        self, raw: bytes, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> bool:
        try:
            head = parse_request_head(raw)
        except HttpError as exc:
            writer.write(_plain(exc.status, exc.reason, close=True))
            return False
        if self.on_request is not None:
            self.on_request()
        try:
            body = await _read_body(head, reader)
        except HttpError as exc:
            writer.write(_plain(exc.status, exc.reason, close=True))
            return False
        except (ValueError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            writer.write(_plain(400, "malformed body", close=True))
            return False
        path, query = split_target(head.target)
        keep = not head.connection_close
        if path == b"/metrics" and head.method == b"GET" and self.metrics_public:
            writer.write(self.metrics_response(keep))
            return keep
        if not token_matches(raw, self.token):
            log.info("403 %s %s: bad or missing API token", head.method.decode(), _safe(path))
            writer.write(messages.simple_response(403, b"", close=not keep))
            return keep
        if path == b"/metrics":
            if head.method != b"GET":
                writer.write(_plain(405, "method not allowed", close=not keep))
            else:
                writer.write(self.metrics_response(keep))
            return keep
        if path != _PREFIX and not path.startswith(_PREFIX + b"/"):
            writer.write(_plain(404, "not found", close=not keep))
            return keep
        try:
            status, payload = self.routes_api(head.method, path[len(_PREFIX) :], query, body)
        except HttpError as exc:
            status, payload = exc.status, {"error": exc.reason}
        out = json.dumps(payload).encode() if payload is not None else b""
        writer.write(
            messages.simple_response(status, out, content_type=b"application/json", close=not keep)
        )
        return keep

    def routes_api(self, method: bytes, sub: bytes, query: bytes, body: bytes) -> tuple[int, Any]:
        """Pure dispatch of one ``/api/routes`` request: (status, JSON payload)."""
        try:
            key = path_to_key(sub.decode("ascii"), host_routing=self.host_routing)
        except (RouteError, UnicodeDecodeError) as exc:
            raise HttpError(400, str(exc)) from exc
        table = self.store.table
        if method == b"GET":
            if key:
                route = table.get(key)
                if route is None:
                    return 404, None
                return 200, route.to_json()
            params = parse_qs(query[1:].decode("latin-1"))
            values = params.get("inactiveSince") or params.get("inactive_since") or [""]
            since = values[0]
            if since:
                try:
                    ts = parse_timestamp(since)
                except ValueError as exc:
                    raise HttpError(400, str(exc)) from exc
                return 200, table.to_json(table.inactive_since(ts))
            return 200, table.to_json()
        if method == b"POST":
            try:
                data = json.loads(body or b"{}")
            except ValueError as exc:
                raise HttpError(400, f"Body not valid JSON: {exc}") from exc
            if not isinstance(data, dict):
                raise HttpError(400, "Body must be a JSON object")
            target = data.get("target")
            if not isinstance(target, str):
                raise HttpError(400, "Must specify 'target' as string")
            try:
                Target(target)
            except ValueError as exc:
                raise HttpError(400, str(exc)) from exc
            if self.host_routing and key:
                data["host"] = key[0]
            self.store.add(key, target, data)
            log.info("Route added %s -> %s", key_to_path(key), target)
            return 201, None
        if method == b"DELETE":
            if self.store.remove(key):
                log.info("Route removed %s", key_to_path(key))
                return 204, None
            return 404, None
        raise HttpError(405, "Method not supported")

    def metrics_response(self, keep: bool) -> bytes:
        text = render(self.store.counters(), len(self.store.table))
        return messages.simple_response(
            200, text.encode(), content_type=METRICS_CONTENT_TYPE, close=not keep
        )


async def _read_body(head: Any, reader: asyncio.StreamReader) -> bytes:
    if head.chunked:
        out = bytearray()
        while True:
            line = await reader.readuntil(b"\r\n")
            size = int(line[:-2].split(b";")[0], 16)
            if size == 0:
                await reader.readuntil(b"\r\n")
                return bytes(out)
            if len(out) + size > _MAX_BODY:
                raise HttpError(413, "body too large")
            out += await reader.readexactly(size)
            await reader.readexactly(2)
    if head.content_length > _MAX_BODY:
        raise HttpError(413, "body too large")
    if head.content_length > 0:
        return await reader.readexactly(head.content_length)
    return b""


def _plain(status: int, reason: str, *, close: bool) -> bytes:
    return messages.simple_response(
        status, f"{status} {reason}\n".encode(), content_type=b"text/plain", close=close
    )


def _safe(path: bytes) -> str:
    return path.decode("latin-1")[:200]
