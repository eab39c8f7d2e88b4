"""Parsed route targets (``http://127.0.0.1:8888/prefix``), cached by string."""

from __future__ import annotations

from urllib.parse import unquote, urlsplit


class Target:
    """Where to connect and what path to prepend; ``key`` identifies its pool."""

    __slots__ = ("host", "host_header", "key", "path_prefix", "port", "tls", "unix_path")

    def __init__(self, url: str) -> None:
        parts = urlsplit(url)
        scheme = parts.scheme.lower()
        self.unix_path: str | None = None
        if scheme in ("http+unix", "unix+http", "https+unix", "unix+https"):
            self.unix_path = unquote(parts.netloc)
            self.tls = "https" in scheme
            self.host = "localhost"
            self.port = 0
        elif scheme in ("http", "https", "ws", "wss"):
            self.tls = scheme in ("https", "wss")
            if not parts.hostname:
                raise ValueError(f"target {url!r} has no host")
            self.host = parts.hostname
            self.port = parts.port or (443 if self.tls else 80)
        else:
            raise ValueError(f"target {url!r} must be http(s)://host[:port][/path]")
        self.path_prefix = parts.path.rstrip("/").encode("ascii")
        host = f"[{self.host}]" if ":" in self.host else self.host
        self.host_header = f"{host}:{self.port}".encode("ascii")
        self.key = (self.tls, self.host, self.port, self.unix_path)


class TargetCache:
    """Parse each target string once; routes share Target objects."""

    __slots__ = ("_cache",)

    def __init__(self) -> None:
        self._cache: dict[str, Target] = {}

    def get(self, url: str) -> Target:
        target = self._cache.get(url)
        if target is None:
            if len(self._cache) > 10000:
                self._cache.clear()
            target = self._cache[url] = Target(url)
        return target
