"""Object storage of the Kubernetes API double: resourceVersion, writes, watch events.

Every write goes through :meth:`Store._commit`, which runs the same steps a
real API server runs (admission, defaulting, validation, optimistic
concurrency) before an object is stored and a watch event is sent.
"""

from __future__ import annotations

import asyncio
import base64
import copy
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from . import pod_security, quota, validation
from .defaults import apply_defaults
from .kinds import BY_KIND, Kind
from .managers import Conflict, now, record_update, server_side_apply
from .patches import merge_patch, strategic_merge_patch
from .selectors import Requirement, matches

Key = tuple[str, str, str, str]  # api_version, kind, namespace, name
Obj = dict[str, Any]


class ApiStatus(Exception):
    """A failure answered as a ``Status`` object, exactly as the real server does."""

    def __init__(
        self, code: int, reason: str, message: str, details: dict[str, Any] | None = None
    ) -> None:
        super().__init__(message)
        self.code, self.reason, self.message = code, reason, message
        self.details = details or {}

    def body(self) -> Obj:
        return {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "details": self.details,
            "code": self.code,
        }


def resource_name(kind: Kind) -> str:
    return f"{kind.plural}.{kind.group}" if kind.group else kind.plural


def not_found(kind: Kind, name: str) -> ApiStatus:
    return ApiStatus(
        404,
        "NotFound",
        f'{resource_name(kind)} "{name}" not found',
        {"name": name, "group": kind.group, "kind": kind.plural},
    )


def invalid(kind: Kind, name: str, causes: list[validation.Cause]) -> ApiStatus:
    text = ", ".join(f"{c.field}: {c.message}" for c in causes)
    return ApiStatus(
        422,
        "Invalid",
        f'{kind.kind}{"." + kind.group if kind.group else ""} "{name}" is invalid: {text}',
        {
            "name": name,
            "group": kind.group,
            "kind": kind.kind,
            "causes": [
                {"reason": c.reason, "message": c.message, "field": c.field} for c in causes
            ],
        },
    )


@dataclass
class WatchEvent:
    rv: int
    kind: Kind
    type: str
    obj: Obj


@dataclass
class Watcher:
    kind: Kind
    namespace: str | None
    labels: list[Requirement]
    fields: list[Requirement]
    loop: asyncio.AbstractEventLoop
    queue: asyncio.Queue[WatchEvent | None] = field(default_factory=asyncio.Queue)

    def wants(self, event: WatchEvent) -> bool:
        if event.kind != self.kind:
            return False
        if self.namespace and event.obj["metadata"].get("namespace") != self.namespace:
            return False
        return matches(event.obj, self.labels, self.fields)


@dataclass
class WriteRecord:
    """One accepted write, kept so tests can assert on what the client did."""

    verb: str
    kind: str
    namespace: str
    name: str
    manager: str


class Store:
    def __init__(self, k8s_version: str = "1.33") -> None:
        self.k8s_version = k8s_version
        self.lock = threading.RLock()
        self.rv = 1000
        self.objects: dict[Key, Obj] = {}
        self.history: list[WatchEvent] = []
        self.watchers: list[Watcher] = []
        self.writes: list[WriteRecord] = []
        #: Called after every committed write: (event type, kind, object).
        self.hooks: list[Callable[[str, Kind, Obj], None]] = []
        for name in ("default", "kube-system", "kube-public"):
            self.create(BY_KIND["v1", "Namespace"], "", {"metadata": {"name": name}}, "double")

    # -- reading -------------------------------------------------------------
    @staticmethod
    def key(kind: Kind, namespace: str, name: str) -> Key:
        return (kind.api_version, kind.kind, namespace if kind.namespaced else "", name)

    def get(self, kind: Kind, namespace: str, name: str) -> Obj:
        with self.lock:
            obj = self.objects.get(self.key(kind, namespace, name))
            if obj is None:
                raise not_found(kind, name)
            return copy.deepcopy(obj)

    def find(self, kind: Kind, namespace: str, name: str) -> Obj | None:
        try:
            return self.get(kind, namespace, name)
        except ApiStatus:
            return None

    def list(
        self,
        kind: Kind,
        namespace: str | None,
        labels: list[Requirement] = (),  # type: ignore[assignment]
        fields: list[Requirement] = (),  # type: ignore[assignment]
    ) -> tuple[list[Obj], int]:
        with self.lock:
            items = [
                copy.deepcopy(obj)
                for (api_version, kname, ns, _), obj in sorted(self.objects.items())
                if (api_version, kname) == (kind.api_version, kind.kind)
                and (not namespace or ns == namespace)
                and matches(obj, list(labels), list(fields))
            ]
            return items, self.rv

    # -- watching ------------------------------------------------------------
    def subscribe(self, watcher: Watcher, since: str | None) -> list[WatchEvent]:
        """Register ``watcher``; return the events it missed since ``since``."""
        with self.lock:
            if since and since != "0":
                start = int(since)
                if self.history and start < self.history[0].rv - 1:
                    raise ApiStatus(410, "Expired", f"too old resource version: {since}")
                backlog = [e for e in self.history if e.rv > start and watcher.wants(e)]
            else:
                items, _ = self.list(
                    watcher.kind, watcher.namespace, watcher.labels, watcher.fields
                )
                backlog = [
                    WatchEvent(int(o["metadata"]["resourceVersion"]), watcher.kind, "ADDED", o)
                    for o in items
                ]
            self.watchers.append(watcher)
            return [WatchEvent(e.rv, e.kind, e.type, copy.deepcopy(e.obj)) for e in backlog]

    def unsubscribe(self, watcher: Watcher) -> None:
        with self.lock:
            if watcher in self.watchers:
                self.watchers.remove(watcher)

    def _emit(self, kind: Kind, event_type: str, obj: Obj) -> None:
        event = WatchEvent(self.rv, kind, event_type, copy.deepcopy(obj))
        self.history.append(event)
        for watcher in list(self.watchers):
            if watcher.wants(event):
                copied = WatchEvent(event.rv, kind, event_type, copy.deepcopy(obj))
                watcher.loop.call_soon_threadsafe(watcher.queue.put_nowait, copied)
        for hook in list(self.hooks):
            hook(event_type, kind, copy.deepcopy(obj))

    # -- writing -------------------------------------------------------------
    def _admit(self, kind: Kind, namespace: str, obj: Obj) -> None:
        ns = None
        if kind.namespaced:
            ns = self.find(BY_KIND["v1", "Namespace"], "", namespace)
            if ns is None:
                raise ApiStatus(
                    404,
                    "NotFound",
                    f'namespaces "{namespace}" not found',
                    {"name": namespace, "kind": "namespaces"},
                )
            if ns.get("metadata", {}).get("deletionTimestamp"):
                raise ApiStatus(403, "Forbidden", f"namespace {namespace} is being terminated")
        if kind.kind == "Pod":
            limit_ranges, _ = self.list(BY_KIND["v1", "LimitRange"], namespace)
            quota.apply_limit_ranges(limit_ranges, obj)  # mutating admission comes first
            spec = obj.get("spec") or {}
            labels = ((ns or {}).get("metadata") or {}).get("labels") or {}
            level = labels.get(pod_security.ENFORCE_LABEL, "privileged")
            problems = pod_security.violations(level, spec)
            if problems:
                raise ApiStatus(
                    403,
                    "Forbidden",
                    f'pods "{obj["metadata"].get("name")}" is forbidden: violates PodSecurity '
                    f'"{level}:latest": ' + ", ".join(problems),
                )
            quotas, _ = self.list(BY_KIND["v1", "ResourceQuota"], namespace)
            pods, _ = self.list(kind, namespace)
            refusal = quota.quota_refusal(quotas, len(pods), obj)
            if refusal:
                raise ApiStatus(403, "Forbidden", refusal)
            account = spec.get("serviceAccountName") or "default"
            if self.find(BY_KIND["v1", "ServiceAccount"], namespace, account) is None:
                raise ApiStatus(
                    403,
                    "Forbidden",
                    f'pods "{obj["metadata"].get("name")}" is forbidden: error looking up service '
                    f'account {namespace}/{account}: serviceaccount "{account}" not found',
                )
            priority = spec.get("priorityClassName")
            if (
                priority
                and self.find(BY_KIND["scheduling.k8s.io/v1", "PriorityClass"], "", priority)
                is None
            ):
                raise ApiStatus(
                    403, "Forbidden", f"no PriorityClass with name {priority} was found"
                )

    def _commit(
        self,
        verb: str,
        kind: Kind,
        namespace: str,
        old: Obj | None,
        new: Obj,
        manager: str,
        dry_run: bool,
    ) -> Obj:
        meta = new.setdefault("metadata", {})
        name = meta.get("name", "")
        if kind.namespaced:
            meta["namespace"] = namespace
        else:
            meta.pop("namespace", None)
        new["apiVersion"], new["kind"] = kind.api_version, kind.kind
        if kind.kind == "Secret" and "stringData" in new:
            data = new.setdefault("data", {})
            for key, value in new.pop("stringData").items():
                data[key] = base64.b64encode(str(value).encode()).decode()
        if old is None:
            meta["uid"] = str(uuid.uuid4())
            meta["creationTimestamp"] = now()
            meta["generation"] = 1
        else:
            old_meta = old["metadata"]
            for stable in ("uid", "creationTimestamp", "deletionTimestamp"):
                if stable in old_meta:
                    meta[stable] = old_meta[stable]
                else:
                    meta.pop(stable, None)
            if verb != "status":
                new["status"] = copy.deepcopy(old.get("status", {}))
                if not new["status"]:
                    new.pop("status")
            body_old = {k: v for k, v in old.items() if k not in ("metadata", "status")}
            body_new = {k: v for k, v in new.items() if k not in ("metadata", "status")}
            meta["generation"] = old_meta.get("generation", 1) + (body_old != body_new)
        meta.pop("resourceVersion", None)
        apply_defaults(new, old)
        causes = validation.semantic_causes(kind, new)
        if old is not None:
            causes += validation.immutable_causes(kind, old, new)
        if not causes:
            checked = copy.deepcopy(new)
            checked["metadata"]["resourceVersion"] = str(self.rv)
            causes = validation.schema_causes(kind, checked, self.k8s_version)
        if causes:
            raise invalid(kind, name, causes)
        if old is None:
            self._admit(kind, namespace, new)
        if old is not None and _same(old, new):
            return copy.deepcopy(old)  # a no-op write keeps the resourceVersion, as on a cluster
        if dry_run:
            new["metadata"]["resourceVersion"] = (
                (old or {}).get("metadata", {}).get("resourceVersion", "")
            )
            return copy.deepcopy(new)
        self.rv += 1
        meta["resourceVersion"] = str(self.rv)
        self.objects[self.key(kind, namespace, name)] = new
        self.writes.append(WriteRecord(verb, kind.kind, namespace, name, manager))
        self._emit(kind, "ADDED" if old is None else "MODIFIED", new)
        if kind.kind == "Namespace" and old is None:
            self._populate_namespace(name)
        return copy.deepcopy(new)

    def _populate_namespace(self, namespace: str) -> None:
        """What the service-account and root-CA controllers put in every namespace."""
        self.create(
            BY_KIND["v1", "ServiceAccount"],
            namespace,
            {"metadata": {"name": "default"}},
            "kube-controller-manager",
        )
        self.create(
            BY_KIND["v1", "ConfigMap"],
            namespace,
            {"metadata": {"name": "kube-root-ca.crt"}, "data": {"ca.crt": "double"}},
            "kube-root-ca-cert-publisher",
        )

    def create(
        self, kind: Kind, namespace: str, body: Obj, manager: str, dry_run: bool = False
    ) -> Obj:
        with self.lock:
            new = copy.deepcopy(body)
            meta = new.setdefault("metadata", {})
            if not meta.get("name") and meta.get("generateName"):
                meta["name"] = meta["generateName"] + uuid.uuid4().hex[:5]
            name = meta.get("name", "")
            if self.key(kind, namespace, name) in self.objects:
                raise ApiStatus(
                    409,
                    "AlreadyExists",
                    f'{resource_name(kind)} "{name}" already exists',
                    {"name": name, "group": kind.group, "kind": kind.plural},
                )
            for dropped in ("resourceVersion", "uid", "managedFields"):
                meta.pop(dropped, None)
            record_update(None, new, manager)
            return self._commit("create", kind, namespace, None, new, manager, dry_run)

    def _stale(self, kind: Kind, name: str) -> ApiStatus:
        return ApiStatus(
            409,
            "Conflict",
            f'Operation cannot be fulfilled on {resource_name(kind)} "{name}": the object has '
            "been modified; please apply your changes to the latest version and try again",
            {"name": name, "group": kind.group, "kind": kind.plural},
        )

    def replace(
        self,
        kind: Kind,
        namespace: str,
        name: str,
        body: Obj,
        manager: str,
        dry_run: bool = False,
        status_only: bool = False,
    ) -> Obj:
        with self.lock:
            old = self.get(kind, namespace, name)
            new = copy.deepcopy(body)
            if (new.get("metadata") or {}).get("name", name) != name:
                raise ApiStatus(400, "BadRequest", "the name of the object does not match the URL")
            wanted = (new.get("metadata") or {}).get("resourceVersion")
            if wanted and wanted != old["metadata"]["resourceVersion"]:
                raise self._stale(kind, name)
            if status_only:
                merged = copy.deepcopy(old)
                merged["status"] = new.get("status", {})
                return self._commit("status", kind, namespace, old, merged, manager, dry_run)
            new.setdefault("metadata", {})["name"] = name
            new["metadata"]["managedFields"] = old["metadata"].get("managedFields")
            record_update(old, new, manager)
            return self._commit("update", kind, namespace, old, new, manager, dry_run)

    def patch(
        self,
        kind: Kind,
        namespace: str,
        name: str,
        patch: Obj,
        content_type: str,
        manager: str,
        force: bool = False,
        dry_run: bool = False,
        status_only: bool = False,
    ) -> Obj:
        with self.lock:
            old = self.find(kind, namespace, name)
            if content_type == "application/apply-patch+yaml":
                return self._apply(kind, namespace, name, old, patch, manager, force, dry_run)
            if old is None:
                raise not_found(kind, name)
            wanted = (patch.get("metadata") or {}).get("resourceVersion")
            if wanted and wanted != old["metadata"]["resourceVersion"]:
                raise self._stale(kind, name)
            if content_type == "application/merge-patch+json":
                new = merge_patch(old, patch)
            elif content_type == "application/strategic-merge-patch+json":
                new = strategic_merge_patch(old, patch)
            else:
                raise ApiStatus(
                    415,
                    "UnsupportedMediaType",
                    f"the body of the request was in an unknown format: {content_type}",
                )
            if status_only:
                merged = copy.deepcopy(old)
                merged["status"] = new.get("status", {})
                return self._commit("status", kind, namespace, old, merged, manager, dry_run)
            record_update(old, new, manager)
            return self._commit("patch", kind, namespace, old, new, manager, dry_run)

    def _apply(
        self,
        kind: Kind,
        namespace: str,
        name: str,
        old: Obj | None,
        applied: Obj,
        manager: str,
        force: bool,
        dry_run: bool,
    ) -> Obj:
        if (applied.get("apiVersion"), applied.get("kind")) != (kind.api_version, kind.kind):
            raise ApiStatus(
                400,
                "BadRequest",
                f"apiVersion/kind of the applied object ({applied.get('apiVersion')}/"
                f"{applied.get('kind')}) does not match the URL ({kind.api_version}/{kind.kind})",
            )
        meta = applied.get("metadata") or {}
        if meta.get("name") != name:
            raise ApiStatus(400, "BadRequest", "the name of the object does not match the URL")
        if meta.get("managedFields"):
            raise ApiStatus(400, "BadRequest", "metadata.managedFields must be nil")
        if kind.namespaced and meta.get("namespace", namespace) != namespace:
            raise ApiStatus(400, "BadRequest", "the namespace of the object does not match the URL")
        wanted = meta.get("resourceVersion")
        if old is not None and wanted and wanted != old["metadata"]["resourceVersion"]:
            raise self._stale(kind, name)
        result, conflicts = server_side_apply(old, applied, manager, force)
        if conflicts and not force:
            raise _conflict_status(kind, name, conflicts)
        return self._commit("apply", kind, namespace, old, result, manager, dry_run)

    def delete(self, kind: Kind, namespace: str, name: str) -> Obj:
        with self.lock:
            obj = self.get(kind, namespace, name)
            del self.objects[self.key(kind, namespace, name)]
            self.rv += 1
            obj["metadata"]["resourceVersion"] = str(self.rv)
            obj["metadata"].setdefault("deletionTimestamp", now())
            self.writes.append(WriteRecord("delete", kind.kind, namespace, name, ""))
            self._emit(kind, "DELETED", obj)
            self._collect(kind, obj)
            return obj

    def _collect(self, kind: Kind, deleted: Obj) -> None:
        """Namespace contents and owner references: delete the dependents too."""
        uid = deleted["metadata"].get("uid")
        for (api_version, kname, ns, name), obj in list(self.objects.items()):
            dependent = BY_KIND[api_version, kname]
            owned = any(
                ref.get("uid") == uid for ref in obj["metadata"].get("ownerReferences") or []
            )
            in_namespace = kind.kind == "Namespace" and ns == deleted["metadata"]["name"]
            if (owned or in_namespace) and self.key(dependent, ns, name) in self.objects:
                self.delete(dependent, ns, name)

    def set_status(self, kind: Kind, namespace: str, name: str, status: Obj) -> Obj | None:
        """What a controller does: write ``status`` (no field ownership change)."""
        with self.lock:
            old = self.find(kind, namespace, name)
            if old is None:
                return None
            new = copy.deepcopy(old)
            new["status"] = status
            return self._commit("status", kind, namespace, old, new, "controller", False)


def _conflict_status(kind: Kind, name: str, conflicts: list[Conflict]) -> ApiStatus:
    lines = [f'conflict with "{c.manager}" using {kind.api_version}: {c.field}' for c in conflicts]
    count = len(conflicts)
    message = f"Apply failed with {count} conflict{'s' if count > 1 else ''}: " + "\n".join(lines)
    return ApiStatus(
        409,
        "Conflict",
        message,
        {
            "name": name,
            "group": kind.group,
            "kind": kind.plural,
            "causes": [
                {"reason": "FieldManagerConflict", "message": line, "field": c.field}
                for c, line in zip(conflicts, lines, strict=True)
            ],
        },
    )


def _without_times(obj: Obj) -> Obj:
    out = copy.deepcopy(obj)
    meta = out.get("metadata", {})
    meta.pop("resourceVersion", None)
    for entry in meta.get("managedFields") or []:
        entry.pop("time", None)
    return out


def _same(old: Obj, new: Obj) -> bool:
    return _without_times(old) == _without_times(new)
