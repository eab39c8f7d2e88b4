"""HTTP front of the Kubernetes API double: the REST and watch protocol.

Paths, verbs, content types, status codes and ``Status`` bodies follow the
real API server closely enough that unmodified clients (lightkube,
kubernetes_asyncio as used by KubeSpawner) work against it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from typing import Any

import yaml
from aiohttp import web

from .kinds import BY_PATH, KINDS, Kind, groups
from .pod_logs import PodLogs, serve_log
from .port_forward import serve_port_forward
from .selectors import SelectorError, parse_fields, parse_labels
from .store import ApiStatus, Store, Watcher

JSON = "application/json"
PATCH_TYPES = (
    "application/apply-patch+yaml",
    "application/merge-patch+json",
    "application/strategic-merge-patch+json",
    "application/json-patch+json",
)


def _json(body: Any, status: int = 200) -> web.Response:
    # Exactly "application/json": lightkube only decodes errors with that content type.
    return web.Response(
        body=json.dumps(body).encode(), status=status, headers={"Content-Type": JSON}
    )


def _error(error: ApiStatus) -> web.Response:
    return _json(error.body(), error.code)


def _truthy(value: str | None) -> bool:
    return value is not None and value.lower() in ("1", "true")


def _default_manager(request: web.Request) -> str:
    agent = request.headers.get("User-Agent", "unknown")
    return agent.split("/", 1)[0] or "unknown"


def _discovery(parts: list[str]) -> Any:
    if parts == ["version"]:
        return {"major": "1", "minor": "33", "gitVersion": "v1.33.0-labfleet-double"}
    if parts == ["api"]:
        return {"kind": "APIVersions", "versions": ["v1"], "serverAddressByClientCIDRs": []}
    if parts == ["apis"]:
        return {
            "kind": "APIGroupList",
            "apiVersion": "v1",
            "groups": [
                {
                    "name": name,
                    "versions": [{"groupVersion": f"{name}/{v}", "version": v} for v in versions],
                    "preferredVersion": {
                        "groupVersion": f"{name}/{versions[0]}",
                        "version": versions[0],
                    },
                }
                for name, versions in groups().items()
                if name
            ],
        }
    if parts in (["api", "v1"],) or (len(parts) == 3 and parts[0] == "apis"):
        group, version = ("", "v1") if parts[0] == "api" else (parts[1], parts[2])
        served = [k for k in KINDS if (k.group, k.version) == (group, version)]
        if not served:
            return None
        return {
            "kind": "APIResourceList",
            "apiVersion": "v1",
            "groupVersion": served[0].api_version,
            "resources": [
                {
                    "name": k.plural,
                    "singularName": k.kind.lower(),
                    "namespaced": k.namespaced,
                    "kind": k.kind,
                    "verbs": [
                        "create",
                        "delete",
                        "deletecollection",
                        "get",
                        "list",
                        "patch",
                        "update",
                        "watch",
                    ],
                }
                for k in served
            ],
        }
    return None


class Route:
    """A parsed resource path: kind, namespace, name, subresource."""

    def __init__(self, kind: Kind, namespace: str, name: str, sub: str) -> None:
        self.kind, self.namespace, self.name, self.sub = kind, namespace, name, sub


def parse_route(parts: list[str]) -> Route | None:
    if parts[:2] == ["api", "v1"]:
        group, version, rest = "", "v1", parts[2:]
    elif len(parts) >= 3 and parts[0] == "apis":
        group, version, rest = parts[1], parts[2], parts[3:]
    else:
        return None
    namespace = ""
    if len(rest) >= 3 and rest[0] == "namespaces":
        namespace, rest = rest[1], rest[2:]
    if not rest or len(rest) > 3:
        return None
    kind = BY_PATH.get((group, version, rest[0]))
    if kind is None or (namespace and not kind.namespaced):
        return None
    name = rest[1] if len(rest) > 1 else ""
    sub = rest[2] if len(rest) > 2 else ""
    if sub not in ("", "status") and not (sub in ("log", "portforward") and kind.plural == "pods"):
        return None
    return Route(kind, namespace, name, sub)


class DoubleServer:
    """aiohttp application over a :class:`Store`."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.app = web.Application(client_max_size=8 * 1024 * 1024)
        self.app.router.add_route("*", "/{tail:.*}", self.handle)
        self.requests: list[tuple[str, str]] = []
        #: API groups to answer 404 for, like a cluster without those CRDs installed.
        self.unserved_groups: set[str] = set()
        #: Resources (plurals) the kubeconfig's user may not touch, as RBAC would answer.
        self.forbidden_resources: set[str] = set()
        #: A namespace owner's rights (Role in one namespace, nothing cluster-wide): set to
        #: that namespace, and cluster-scoped kinds and other namespaces answer 403.
        self.namespace_only: str | None = None
        #: What users' and our containers printed (tests write it; see pod_logs.py).
        self.pod_logs = PodLogs()
        self.stopping = asyncio.Event()

    async def handle(self, request: web.Request) -> web.StreamResponse:
        self.requests.append((request.method, request.path_qs))
        parts = [p for p in request.path.split("/") if p]
        if request.method == "GET":
            found = _discovery(parts)
            if found is not None and not (len(parts) > 1 and parts[1] in self.unserved_groups):
                return _json(found)
        route = parse_route(parts)
        group = parts[1] if len(parts) > 1 and parts[0] == "apis" else ""
        if group in self.unserved_groups or (route is None and group not in groups()):
            # An API group the server lacks: the real apiserver's plain-text 404.
            return web.Response(status=404, text="404 page not found\n")
        if route is None:
            return _error(
                ApiStatus(404, "NotFound", "the server could not find the requested resource")
            )
        outside = self.namespace_only is not None and (
            not route.kind.namespaced or route.namespace != self.namespace_only
        )
        if route.kind.plural in self.forbidden_resources or outside:
            return _error(
                ApiStatus(
                    403,
                    "Forbidden",
                    f'{route.kind.plural} is forbidden: User "tester" cannot '
                    f"{request.method.lower()} resource {route.kind.plural!r}",
                )
            )
        try:
            return await self._dispatch(request, route)
        except ApiStatus as error:
            return _error(error)
        except SelectorError as error:
            return _error(ApiStatus(400, "BadRequest", str(error)))

    async def _body(self, request: web.Request) -> dict[str, Any]:
        raw = await request.read()
        try:
            body = (
                yaml.safe_load(raw) if "yaml" in request.content_type else json.loads(raw or b"{}")
            )
        except (ValueError, yaml.YAMLError) as error:
            raise ApiStatus(400, "BadRequest", f"error decoding request body: {error}") from error
        if not isinstance(body, dict):
            raise ApiStatus(400, "BadRequest", "the request body must be an object")
        return body

    async def _dispatch(self, request: web.Request, route: Route) -> web.StreamResponse:
        store, kind, ns, name = self.store, route.kind, route.namespace, route.name
        if route.sub == "log" and request.method == "GET":
            pod = store.get(kind, ns, name)
            exists = lambda: store.find(kind, ns, name) is not None  # noqa: E731
            return await serve_log(request, pod, self.pod_logs, exists, self.stopping)
        if route.sub == "portforward" and request.method in ("GET", "POST"):
            return await serve_port_forward(request, store.get(kind, ns, name), self.stopping)
        query = request.query
        dry_run = query.get("dryRun") == "All"
        manager = query.get("fieldManager") or _default_manager(request)
        method = request.method
        if kind.namespaced and not ns and method not in ("GET",):
            raise ApiStatus(404, "NotFound", "the server could not find the requested resource")
        if method == "GET" and not name:
            labels = parse_labels(query.get("labelSelector"))
            fields = parse_fields(query.get("fieldSelector"))
            if _truthy(query.get("watch")):
                return await self._watch(request, kind, ns or None, labels, fields)
            items, rv = store.list(kind, ns or None, labels, fields)
            for item in items:
                item.pop("apiVersion", None)
                item.pop("kind", None)
            return _json(
                {
                    "kind": kind.list_kind,
                    "apiVersion": kind.api_version,
                    "metadata": {"resourceVersion": str(rv)},
                    "items": items,
                }
            )
        if method == "GET":
            return _json(store.get(kind, ns, name))
        if method == "POST" and not name:
            body = await self._body(request)
            body_ns = (body.get("metadata") or {}).get("namespace")
            if kind.namespaced and body_ns and body_ns != ns:
                raise ApiStatus(
                    400,
                    "BadRequest",
                    "the namespace of the provided object does not match the namespace sent "
                    "on the request",
                )
            return _json(store.create(kind, ns, body, manager, dry_run), 201)
        if method == "PUT" and name:
            body = await self._body(request)
            return _json(
                store.replace(kind, ns, name, body, manager, dry_run, route.sub == "status")
            )
        if method == "PATCH" and name:
            if request.content_type not in PATCH_TYPES[:3]:
                raise ApiStatus(
                    415,
                    "UnsupportedMediaType",
                    f"the body of the request was in an unknown format: {request.content_type}",
                )
            if request.content_type == PATCH_TYPES[0] and not query.get("fieldManager"):
                raise ApiStatus(
                    422,
                    "Invalid",
                    'PatchOptions.meta.k8s.io "" is invalid: fieldManager: Required value: '
                    "is required for apply patch",
                )
            body = await self._body(request)
            force = _truthy(query.get("force"))
            created = store.find(kind, ns, name) is None  # apply creates: 201, as on a cluster
            return _json(
                store.patch(
                    kind,
                    ns,
                    name,
                    body,
                    request.content_type,
                    manager,
                    force,
                    dry_run,
                    route.sub == "status",
                ),
                201 if created and not dry_run else 200,
            )
        if method == "DELETE" and name:
            return _json(store.delete(kind, ns, name))
        if method == "DELETE":
            labels = parse_labels(query.get("labelSelector"))
            fields = parse_fields(query.get("fieldSelector"))
            items, _ = store.list(kind, ns or None, labels, fields)
            for item in items:
                store.delete(kind, item["metadata"].get("namespace", ""), item["metadata"]["name"])
            return _json(
                {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success"}
            )
        raise ApiStatus(405, "MethodNotAllowed", f"{method} is not supported here")

    async def _watch(
        self, request: web.Request, kind: Kind, namespace: str | None, labels: Any, fields: Any
    ) -> web.StreamResponse:
        loop = asyncio.get_running_loop()
        watcher = Watcher(kind, namespace, labels, fields, loop)
        backlog = self.store.subscribe(watcher, request.query.get("resourceVersion"))
        timeout = float(request.query.get("timeoutSeconds") or 1800)
        response = web.StreamResponse(headers={"Content-Type": JSON})
        response.enable_chunked_encoding()
        await response.prepare(request)
        deadline = loop.time() + timeout
        try:
            for event in backlog:
                await self._send(response, event.type, event.obj)
            while not self.stopping.is_set():
                remaining = deadline - loop.time()
                if remaining <= 0:
                    break
                try:
                    event = await asyncio.wait_for(watcher.queue.get(), min(remaining, 0.5))
                except TimeoutError:
                    continue
                if event is None:
                    break
                await self._send(response, event.type, event.obj)
        except (ConnectionResetError, asyncio.CancelledError):
            pass
        finally:
            self.store.unsubscribe(watcher)
        with contextlib.suppress(ConnectionResetError, RuntimeError):
            await response.write_eof()
        return response

    @staticmethod
    async def _send(response: web.StreamResponse, event_type: str, obj: dict[str, Any]) -> None:
        line = json.dumps({"type": event_type, "object": obj}) + "\n"
        await response.write(line.encode())
