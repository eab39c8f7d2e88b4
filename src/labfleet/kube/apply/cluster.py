"""The engine's only door to the API server: dict in, dict out, over lightkube.

Keeping every call here means the rest of the engine deals in plain
manifests and :class:`ObjectRef`s, and errors arrive as the engine's own
exception types with messages a person can act on.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from httpx2 import HTTPStatusError  # lightkube 1.x's HTTP client; ApiError derives from it
from lightkube import ApiError, Client
from lightkube.types import PatchType

from labfleet.kube.apply.refs import FIELD_MANAGER, Manifest, ObjectRef
from labfleet.kube.apply.resources import resource_of


class ClusterError(RuntimeError):
    """The API server refused a request; ``code`` is the HTTP status."""

    def __init__(self, ref: ObjectRef | None, code: int, message: str) -> None:
        where = f"{ref}: " if ref else ""
        super().__init__(f"{where}{message}")
        self.ref, self.code = ref, code


class ConflictError(ClusterError):
    """Server-side apply found fields owned by another field manager."""

    def __init__(self, ref: ObjectRef, message: str, fields: list[str]) -> None:
        self.fields = fields
        owners = f" ({', '.join(fields)})" if fields else ""
        super().__init__(
            ref,
            409,
            f"another field manager owns fields labfleet wants to change{owners}.\n"
            f"  {message}\n"
            "  Someone edited this object outside labfleet (kubectl edit, another tool). "
            "Review the change, then re-run with --force-conflicts to take the fields back.",
        )


def _to_dict(obj: Any) -> dict[str, Any]:
    if isinstance(obj, dict):
        return dict(obj)
    result = obj.to_dict()
    if not isinstance(result, dict):
        raise TypeError(f"unexpected object from lightkube: {type(obj)!r}")
    return result


#: What to do when the cluster lacks the API of a custom resource we render.
_CRD_HINTS = {
    "networking.gke.io": "it exists only on GKE; use another kubernetes.access.kind elsewhere",
    "cloud.google.com": "it exists only on GKE; use another kubernetes.access.kind elsewhere",
    "cert-manager.io": "install cert-manager (https://cert-manager.io) or turn off TLS issuance",
}


def _hint(ref: ObjectRef | None, code: int, message: str) -> str:
    if ref is None or code != 404:
        return message
    if message == "the server could not find the requested resource":
        group = ref.api_version.rpartition("/")[0]
        advice = _CRD_HINTS.get(group, "is its CustomResourceDefinition installed?")
        return f"the cluster does not serve {ref.api_version} {ref.kind}: {advice}"
    if ref.namespace and message == f'namespaces "{ref.namespace}" not found':
        return (
            f"namespace {ref.namespace} does not exist: create it, or set "
            "kubernetes.create_namespace: true"
        )
    return message


#: A 404 for a path the server does not serve at all (an API group whose CRD
#: is not installed) comes as plain text, not as a ``Status``; lightkube then
#: raises the HTTP client's status error instead of :class:`ApiError`.
_NOT_SERVED = "the server could not find the requested resource"


def _status_of(error: HTTPStatusError) -> tuple[int, str, str]:
    """(code, reason, message) of any HTTP error lightkube raises."""
    if isinstance(error, ApiError):
        status = error.status
        code = int(status.code or 0)
        return code, str(status.reason or ""), str(status.message or status.reason or "failed")
    code = error.response.status_code
    return code, "", _NOT_SERVED if code == 404 else f"HTTP {code}: {error.response.text[:200]}"


def _error(ref: ObjectRef | None, error: HTTPStatusError) -> ClusterError:
    code, reason, raw = _status_of(error)
    message = _hint(ref, code, raw)
    apply_conflict = code == 409 and reason == "Conflict" and "Apply failed" in message
    if isinstance(error, ApiError) and apply_conflict and ref is not None:
        details = error.status.details
        causes = (details.causes if details else None) or []
        return ConflictError(ref, message, [str(c.field) for c in causes if c.field])
    return ClusterError(ref, code, message)


def _missing(error: HTTPStatusError) -> bool:
    return _status_of(error)[0] == 404


class Cluster:
    """A lightkube client bound to labfleet's field manager."""

    def __init__(self, client: Client, field_manager: str = FIELD_MANAGER) -> None:
        self.client = client
        self.field_manager = field_manager

    def close(self) -> None:
        self.client.close()

    def __enter__(self) -> Cluster:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def get(self, ref: ObjectRef) -> dict[str, Any] | None:
        try:
            obj = self.client.get(resource_of(ref), ref.name, namespace=ref.namespace or None)
        except HTTPStatusError as error:
            if _missing(error):
                return None
            raise _error(ref, error) from None
        result = _to_dict(obj)
        result.setdefault("apiVersion", ref.api_version)
        result.setdefault("kind", ref.kind)
        return result

    def apply(
        self, manifest: Manifest, *, force: bool = False, dry_run: bool = False
    ) -> dict[str, Any]:
        """Server-side apply ``manifest`` as our field manager; the object the server holds."""
        ref = ObjectRef.of(manifest)
        try:
            obj = self.client.patch(
                resource_of(ref),
                ref.name,
                manifest,
                namespace=ref.namespace or None,
                patch_type=PatchType.APPLY,
                field_manager=self.field_manager,
                force=force,
                dry_run=dry_run,
            )
        except HTTPStatusError as error:
            raise _error(ref, error) from None
        return _to_dict(obj)

    def delete(self, ref: ObjectRef) -> bool:
        """Delete; False when it was already gone."""
        try:
            self.client.delete(resource_of(ref), ref.name, namespace=ref.namespace or None)
        except HTTPStatusError as error:
            if _missing(error):
                return False
            raise _error(ref, error) from None
        return True

    def list(
        self,
        api_version: str,
        kind: str,
        *,
        namespace: str | None,
        labels: dict[str, str] | None = None,
    ) -> Iterator[dict[str, Any]]:
        """Objects of one kind (cluster-wide for cluster-scoped kinds).

        A kind the server does not serve (a CRD that is not installed)
        yields nothing rather than failing: there is nothing of ours there.
        """
        probe = ObjectRef(api_version, kind, namespace or "", "")
        resource = resource_of(probe)
        kwargs: dict[str, Any] = {"labels": labels} if labels else {}
        if probe.namespaced:
            kwargs["namespace"] = namespace
        try:
            for obj in self.client.list(resource, **kwargs):
                item = _to_dict(obj)
                item.setdefault("apiVersion", api_version)
                item.setdefault("kind", kind)
                yield item
        except HTTPStatusError as error:
            if _missing(error):
                return
            raise _error(None, error) from None
