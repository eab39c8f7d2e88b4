"""A scripted raw-socket target for tests that need a misbehaving backend.

tornado cannot be told to drop a kept-alive socket after reading a request,
or to send hop-by-hop headers of its own; a few lines of socket code can.
Each accepted connection runs ``handler(conn, requests)`` in a thread, where
``requests`` is the list (shared by all connections) of raw request heads
received so far, so tests can count what reached the target.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Callable


class RawServer:
    def __init__(self, handler: Callable[[socket.socket, RawServer], None]) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.port = int(self.sock.getsockname()[1])
        self.url = f"http://127.0.0.1:{self.port}"
        self.requests: list[bytes] = []
        self.connections = 0
        self.lock = threading.Lock()
        self._handler = handler
        self._threads: list[threading.Thread] = []
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with self.lock:
                self.connections += 1
            t = threading.Thread(target=self._run, args=(conn,), daemon=True)
            self._threads.append(t)
            t.start()

    def _run(self, conn: socket.socket) -> None:
        with conn, contextlib.suppress(OSError):
            self._handler(conn, self)

    def read_request(self, conn: socket.socket, buf: bytearray) -> bytes | None:
        """One request (head + Content-Length body) from ``conn``; None at EOF."""
        while b"\r\n\r\n" not in buf:
            data = conn.recv(65536)
            if not data:
                return None
            buf += data
        end = buf.index(b"\r\n\r\n") + 4
        head = bytes(buf[:end])
        length = 0
        for line in head.split(b"\r\n"):
            if line.lower().startswith(b"content-length:"):
                length = int(line.split(b":", 1)[1])
        while len(buf) < end + length:
            data = conn.recv(65536)
            if not data:
                return None
            buf += data
        request = bytes(buf[: end + length])
        del buf[: end + length]
        with self.lock:
            self.requests.append(request)
        return request

    def close(self) -> None:
        self.sock.close()
