"""The API double's pod log endpoint: ``GET /api/v1/namespaces/NS/pods/NAME/log``.

No container runs behind the double, so nothing writes logs by itself: a test
puts the lines a container "printed" with :meth:`PodLogs.write` (the
double's stand-in for the kubelet's log files), and the endpoint serves them
the way the API server does: ``text/plain``, ``container`` required when a
pod has several, ``tailLines``, and ``follow=true`` as a chunked stream that
ends when the pod is deleted or the double stops. Errors are the real
``Status`` bodies (404 for a missing pod, 400 for a bad container name).
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Callable
from typing import Any

from aiohttp import web

from .store import ApiStatus

Key = tuple[str, str, str]  # namespace, pod, container


class PodLogs:
    """What each container has written, by (namespace, pod, container)."""

    def __init__(self) -> None:
        self._lines: dict[Key, list[str]] = {}
        self._lock = threading.Lock()

    def write(self, namespace: str, pod: str, container: str, *lines: str) -> None:
        with self._lock:
            self._lines.setdefault((namespace, pod, container), []).extend(lines)

    def read(self, key: Key, start: int = 0) -> list[str]:
        with self._lock:
            return list(self._lines.get(key, [])[start:])


def _container(pod: dict[str, Any], wanted: str | None) -> str:
    spec = pod.get("spec") or {}
    names = [c["name"] for c in spec.get("containers") or []]
    name = pod["metadata"]["name"]
    if not wanted:
        if len(names) == 1:
            return names[0]
        raise ApiStatus(
            400,
            "BadRequest",
            f"a container name must be specified for pod {name}, choose one of: "
            f"[{' '.join(names)}]",
        )
    if wanted not in names:
        raise ApiStatus(400, "BadRequest", f"container {wanted} is not valid for pod {name}")
    return wanted


async def serve_log(
    request: web.Request,
    pod: dict[str, Any],
    logs: PodLogs,
    pod_exists: Callable[[], bool],
    stopping: asyncio.Event,
) -> web.StreamResponse:
    query = request.query
    container = _container(pod, query.get("container"))
    key = (pod["metadata"]["namespace"], pod["metadata"]["name"], container)
    lines = logs.read(key)
    tail = query.get("tailLines")
    if tail is not None:
        lines = lines[-int(tail) :] if int(tail) > 0 else []
    seen = len(logs.read(key))
    if query.get("follow") not in ("true", "1"):
        return web.Response(text="".join(f"{line}\n" for line in lines), content_type="text/plain")
    response = web.StreamResponse(headers={"Content-Type": "text/plain"})
    response.enable_chunked_encoding()
    await response.prepare(request)
    try:
        for line in lines:
            await response.write(f"{line}\n".encode())
        while not stopping.is_set() and pod_exists():
            new = logs.read(key, seen)
            seen += len(new)
            for line in new:
                await response.write(f"{line}\n".encode())
            await asyncio.sleep(0.05)
    except (ConnectionResetError, asyncio.CancelledError):
        pass
    with contextlib.suppress(ConnectionResetError, RuntimeError):
        await response.write_eof()
    return response
