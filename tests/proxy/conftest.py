"""Fixtures: a real labfleet-proxy process, real tornado backends, raw sockets."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import weakref
from collections.abc import Iterator
from pathlib import Path
from typing import Any, BinaryIO

import httpx
import pytest

HERE = Path(__file__).parent
REPO = HERE.parent.parent
PROXY_BIN = str(Path(sys.executable).parent / "labfleet-proxy")
TOKEN = "test-token-0123456789"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_port(port: int, proc: subprocess.Popen[Any] | None = None, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"process exited with {proc.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"port {port} did not open")


class Backend:
    def __init__(self, name: str) -> None:
        self.name = name
        self.proc = subprocess.Popen(
            [sys.executable, str(HERE / "backend_app.py"), name],
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        assert line.startswith("PORT "), line
        self.port = int(line.split()[1])
        self.url = f"http://127.0.0.1:{self.port}"

    def stop(self) -> None:
        self.proc.kill()
        self.proc.wait()


class Proxy:
    """A labfleet-proxy process on random loopback ports."""

    def __init__(self, *extra: str, token: str | None = TOKEN, wait: bool = True) -> None:
        self.port = free_port()
        self.api_port = free_port()
        env = dict(os.environ)
        env.pop("CONFIGPROXY_AUTH_TOKEN", None)
        if token is not None:
            env["CONFIGPROXY_AUTH_TOKEN"] = token
        self.args = [
            PROXY_BIN,
            "--ip",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--api-ip",
            "127.0.0.1",
            "--api-port",
            str(self.api_port),
            *extra,
        ]
        self.proc = subprocess.Popen(self.args, env=env, stderr=subprocess.PIPE, text=True)
        self.url = f"http://127.0.0.1:{self.port}"
        self.api_url = f"http://127.0.0.1:{self.api_port}"
        if wait:
            wait_port(self.port, self.proc)
            wait_port(self.api_port, self.proc)

    def api(self, method: str, path: str = "", body: Any = None, **kw: Any) -> httpx.Response:
        headers = kw.pop("headers", {"Authorization": f"token {TOKEN}"})
        content = json.dumps(body) if body is not None else None
        return httpx.request(
            method,
            f"{self.api_url}/api/routes{path}",
            headers=headers,
            content=content,
            timeout=10,
            **kw,
        )

    def add(self, path: str, target: str, **data: Any) -> None:
        r = self.api("POST", path, {"target": target, **data})
        assert r.status_code == 201, r.text

    def stop(self) -> str:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        assert self.proc.stderr is not None
        return self.proc.stderr.read()


def raw_exchange(port: int, data: bytes, timeout: float = 10) -> bytes:
    """Send raw bytes, return everything until the proxy closes (or timeout)."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(data)
        chunks = []
        try:
            while True:
                got = s.recv(65536)
                if not got:
                    break
                chunks.append(got)
        except TimeoutError:
            pass
        return b"".join(chunks)


_READERS: weakref.WeakKeyDictionary[socket.socket, BinaryIO] = weakref.WeakKeyDictionary()


def _reader(sock: socket.socket) -> BinaryIO:
    """One buffered reader per socket, kept for the socket's life.

    A reader reads ahead: a fresh one per response would swallow the bytes of
    the pipelined responses behind the first and drop them with itself, so the
    next call would wait for a response that already came (and then see the
    proxy's keep-alive close).
    """
    f = _READERS.get(sock)
    if f is None:
        f = _READERS[sock] = sock.makefile("rb")
    return f


def read_response(sock: socket.socket) -> tuple[int, dict[str, str], bytes]:
    """Read exactly one HTTP/1.1 response from a socket (CL, chunked, or until close).

    Call it once per response on the same socket: bytes read ahead are kept for
    the next call (``_reader``), so a ``sock.recv`` after a call sees only what
    arrived after them (fine for "the proxy closed the connection" checks).
    """
    f = _reader(sock)
    status_line = f.readline()
    status = int(status_line.split()[1])
    headers: dict[str, str] = {}
    while True:
        line = f.readline()
        if line in (b"\r\n", b""):
            break
        name, _, value = line.decode("latin-1").partition(":")
        headers[name.strip().lower()] = value.strip()
    if "content-length" in headers:
        body = f.read(int(headers["content-length"]))
    elif headers.get("transfer-encoding") == "chunked":
        body = b""
        while True:
            size = int(f.readline().split(b";")[0], 16)
            if size == 0:
                f.readline()
                break
            body += f.read(size)
            f.readline()
    elif status in (101, 204, 304) or 100 <= status < 200:
        body = b""
    else:
        body = f.read()
    return status, headers, body


@pytest.fixture(scope="session")
def backends() -> Iterator[dict[str, Backend]]:
    started = {name: Backend(name) for name in ("hub", "alice", "bob")}
    yield started
    for b in started.values():
        b.stop()


@pytest.fixture(scope="module")
def proxy(backends: dict[str, Backend]) -> Iterator[Proxy]:
    p = Proxy()
    p.add("/", backends["hub"].url)
    p.add("/user/alice", backends["alice"].url)
    p.add("/user/bob", backends["bob"].url)
    yield p
    p.stop()


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Long runs (``fuzz``, ``stock_suite``) only when asked for with ``-m <marker>``."""
    asked = config.option.markexpr or ""
    for marker in ("fuzz", "stock_suite"):
        if marker in asked:
            continue
        skip = pytest.mark.skip(reason=f"long run: select with -m {marker}")
        for item in items:
            if marker in item.keywords:
                item.add_marker(skip)
