"""Public keys from a JWKS URL or file: cached, refreshed when a token names an unknown key.

Google rotates IAP's signing keys; a token signed with a new key names a
``kid`` we have not seen, which triggers one refresh. Refreshes are rate
limited, so a stream of tokens with made-up ``kid`` values cannot turn the
hub into a JWKS-fetching loop.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import jwt

_LOOPBACK = frozenset({"127.0.0.1", "localhost", "::1"})
_MAX_JWKS_BYTES = 1024 * 1024

Fetcher = Callable[[str], Awaitable[bytes]]


class JwksError(Exception):
    """The key set could not be loaded (the message names the source, never a token)."""


def parse_jwks(data: bytes, algorithm: str = "ES256") -> dict[str, jwt.PyJWK]:
    """Keys usable for ``algorithm``, by ``kid``; unusable entries are skipped."""
    try:
        document = json.loads(data)
    except ValueError as exc:
        raise JwksError("the key set is not JSON") from exc
    entries = document.get("keys") if isinstance(document, dict) else None
    if not isinstance(entries, list):
        raise JwksError("the key set has no 'keys' list")
    keys: dict[str, jwt.PyJWK] = {}
    for entry in entries:
        if not isinstance(entry, dict) or not isinstance(entry.get("kid"), str):
            continue
        try:
            key = jwt.PyJWK(entry, algorithm=algorithm)
        except (jwt.PyJWKError, jwt.InvalidKeyError, ValueError, TypeError):
            continue
        if algorithm == "ES256" and (entry.get("kty") != "EC" or entry.get("crv") != "P-256"):
            continue
        keys[entry["kid"]] = key
    return keys


def check_location(location: str) -> None:
    """Accept https URLs, http only on loopback (tests, sidecars), or a file path."""
    parts = urlsplit(location)
    if parts.scheme == "https":
        return
    if parts.scheme == "http":
        if parts.hostname in _LOOPBACK:
            return
        raise JwksError("a JWKS URL must use https (plain http only on loopback)")
    if parts.scheme in ("", "file"):
        return
    raise JwksError(f"unsupported JWKS location scheme {parts.scheme!r}")


async def fetch_url(url: str) -> bytes:
    """GET ``url`` with tornado's client (JupyterHub's own HTTP stack)."""
    from tornado.httpclient import AsyncHTTPClient

    response = await AsyncHTTPClient().fetch(
        url, request_timeout=10, connect_timeout=5, follow_redirects=False
    )
    body: bytes = response.body
    return body


class KeySet:
    """The keys of one JWKS location."""

    def __init__(
        self,
        location: str,
        algorithm: str = "ES256",
        ttl: float = 3600,
        min_refresh_interval: float = 30,
        fetcher: Fetcher = fetch_url,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        check_location(location)
        self.location = location
        self.algorithm = algorithm
        self.ttl = ttl
        self.min_refresh_interval = min_refresh_interval
        self._fetcher = fetcher
        self._clock = clock
        self._keys: dict[str, jwt.PyJWK] = {}
        self._loaded_at: float | None = None
        self._lock = asyncio.Lock()
        self.loads = 0

    async def _read(self) -> bytes:
        parts = urlsplit(self.location)
        if parts.scheme in ("http", "https"):
            data = await self._fetcher(self.location)
        else:
            path = Path(parts.path if parts.scheme == "file" else self.location)
            data = await asyncio.get_running_loop().run_in_executor(None, path.read_bytes)
        if len(data) > _MAX_JWKS_BYTES:
            raise JwksError("the key set is too large")
        return data

    async def _load(self) -> None:
        try:
            data = await self._read()
        except JwksError:
            raise
        except Exception as exc:
            raise JwksError(f"could not read the key set from {self.location}: {exc}") from None
        self._keys = parse_jwks(data, self.algorithm)
        self._loaded_at = self._clock()
        self.loads += 1

    def _fresh(self) -> bool:
        return self._loaded_at is not None and self._clock() - self._loaded_at < self.ttl

    def _may_refresh(self) -> bool:
        return (
            self._loaded_at is None or self._clock() - self._loaded_at >= self.min_refresh_interval
        )

    async def key(self, kid: str) -> Any | None:
        """The verification key for ``kid``, or None if the key set does not have it."""
        async with self._lock:
            if not self._fresh() or (kid not in self._keys and self._may_refresh()):
                try:
                    await self._load()
                except JwksError:
                    if not self._keys:
                        raise
                    # Keep serving the cached keys; try again after the refresh interval.
                    self._loaded_at = self._clock() - self.ttl + self.min_refresh_interval
            found = self._keys.get(kid)
        return None if found is None else found.key
