"""Start and stop the Kubernetes API double on 127.0.0.1 in a background thread.

This is a test double: no cluster runs on the machines where labfleet is
tested, so the apply engine and KubeSpawner are exercised against this
in-process HTTP server that speaks the Kubernetes REST and watch protocol.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml
from aiohttp import web

from .controller import Controller
from .kinds import BY_KIND, Kind
from .server import DoubleServer
from .store import Obj, Store


class KubeDouble:
    def __init__(
        self,
        k8s_version: str = "1.33",
        tick: float = 0.05,
        *,
        host: str = "127.0.0.1",
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        #: Where it listens; containers reach it on their network's gateway address, and
        #: in-cluster clients (a hub pod's service account) only speak HTTPS (``ssl_context``).
        self.host = host
        self.ssl_context = ssl_context
        self.store = Store(k8s_version)
        self.controller = Controller(self.store)
        self.server = DoubleServer(self.store)
        self.tick = tick
        self.port = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._stop: asyncio.Event | None = None

    @property
    def url(self) -> str:
        scheme = "https" if self.ssl_context is not None else "http"
        return f"{scheme}://{self.host}:{self.port}"

    def start(self) -> KubeDouble:
        self._thread = threading.Thread(target=self._run, name="kube-double", daemon=True)
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("the Kubernetes API double did not start")
        return self

    def _run(self) -> None:
        asyncio.run(self._main())

    async def _main(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        runner = web.AppRunner(self.server.app, shutdown_timeout=1.0)
        await runner.setup()
        site = web.TCPSite(runner, self.host, 0, ssl_context=self.ssl_context)
        await site.start()
        server = site._server
        assert server is not None
        self.port = server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self._ready.set()
        try:
            while not self._stop.is_set():
                self.controller.reconcile()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stop.wait(), self.tick)
        finally:
            self.server.stopping.set()
            await runner.cleanup()

    def stop(self) -> None:
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        if self._thread is not None:
            self._thread.join(10)

    def write_kubeconfig(
        self, path: Path, namespace: str = "default", ca_file: Path | None = None
    ) -> Path:
        cluster: dict[str, Any] = {"server": self.url}
        if ca_file is not None:
            cluster["certificate-authority"] = str(ca_file)
        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": "double", "cluster": cluster}],
            "users": [{"name": "tester", "user": {"token": "not-checked-by-the-double"}}],
            "contexts": [
                {
                    "name": "double",
                    "context": {"cluster": "double", "user": "tester", "namespace": namespace},
                }
            ],
            "current-context": "double",
            "preferences": {},
        }
        path.write_text(yaml.safe_dump(config))
        return path

    def write_pod_log(self, namespace: str, pod: str, container: str, *lines: str) -> None:
        """Lines a container printed (no container runs here: tests say what it wrote)."""
        self.server.pod_logs.write(namespace, pod, container, *lines)

    # -- inspection helpers for tests (read straight from the store) -------
    def kind(self, api_version: str, kind: str) -> Kind:
        return BY_KIND[api_version, kind]

    def get(self, api_version: str, kind: str, name: str, namespace: str = "") -> Obj | None:
        return self.store.find(BY_KIND[api_version, kind], namespace, name)

    def list(
        self, api_version: str, kind: str, namespace: str | None = None, **labels: Any
    ) -> list[Obj]:
        items, _ = self.store.list(BY_KIND[api_version, kind], namespace)
        return [
            o
            for o in items
            if all((o["metadata"].get("labels") or {}).get(k) == v for k, v in labels.items())
        ]


@contextlib.contextmanager
def running_double(**kwargs: Any) -> Iterator[KubeDouble]:
    double = KubeDouble(**kwargs).start()
    try:
        yield double
    finally:
        double.stop()
