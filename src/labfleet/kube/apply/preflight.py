"""Objects the rendered workloads need but labfleet does not render.

Some inputs are the operator's to create (the PostgreSQL URL Secret, image
pull secrets, an existing PVC). If one is missing, the rollout would only
hang with pods stuck in ``CreateContainerConfigError``; saying so before
applying is kinder. :func:`references` is pure; :func:`missing_references`
asks the cluster.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from labfleet.kube.apply.cluster import Cluster
from labfleet.kube.apply.refs import Manifest, ObjectRef

WORKLOADS = frozenset({"Deployment", "StatefulSet", "DaemonSet", "Job", "Pod"})


@dataclass(frozen=True)
class MissingReference:
    ref: ObjectRef
    needed_by: tuple[ObjectRef, ...]

    def __str__(self) -> str:
        users = ", ".join(str(r).split(" -n ")[0] for r in self.needed_by)
        return f"{self.ref} is needed by {users} but does not exist; create it first"


def _pod_spec(manifest: Manifest) -> dict[str, Any]:
    if manifest.get("kind") == "Pod":
        return dict(manifest.get("spec") or {})
    template = (manifest.get("spec") or {}).get("template") or {}
    return dict(template.get("spec") or {})


def _env_refs(container: dict[str, Any]) -> Iterable[tuple[str, str]]:
    for env in container.get("env") or []:
        source = env.get("valueFrom") or {}
        for key, kind in (("secretKeyRef", "Secret"), ("configMapKeyRef", "ConfigMap")):
            ref = source.get(key)
            if ref and not ref.get("optional") and ref.get("name"):
                yield kind, ref["name"]
    for source in container.get("envFrom") or []:
        for key, kind in (("secretRef", "Secret"), ("configMapRef", "ConfigMap")):
            ref = source.get(key)
            if ref and not ref.get("optional") and ref.get("name"):
                yield kind, ref["name"]


def references(manifest: Manifest) -> set[ObjectRef]:
    """Namespaced objects one workload's pods cannot start without."""
    if manifest.get("kind") not in WORKLOADS:
        return set()
    namespace = str((manifest.get("metadata") or {}).get("namespace") or "")
    spec = _pod_spec(manifest)
    found: set[tuple[str, str]] = set()
    account = spec.get("serviceAccountName")
    if account and account != "default":
        found.add(("ServiceAccount", account))
    for volume in spec.get("volumes") or []:
        for key, kind, name_key in (
            ("secret", "Secret", "secretName"),
            ("configMap", "ConfigMap", "name"),
            ("persistentVolumeClaim", "PersistentVolumeClaim", "claimName"),
        ):
            ref = volume.get(key)
            if ref and not ref.get("optional") and ref.get(name_key):
                found.add((kind, ref[name_key]))
    for container in (spec.get("initContainers") or []) + (spec.get("containers") or []):
        found.update(_env_refs(container))
    for secret in spec.get("imagePullSecrets") or []:
        if secret.get("name"):
            found.add(("Secret", secret["name"]))
    return {ObjectRef("v1", kind, namespace, name) for kind, name in found}


def missing_references(cluster: Cluster, manifests: Sequence[Manifest]) -> list[MissingReference]:
    rendered = {ObjectRef.of(m) for m in manifests}
    needed: dict[ObjectRef, list[ObjectRef]] = {}
    for manifest in manifests:
        for ref in references(manifest) - rendered:
            needed.setdefault(ref, []).append(ObjectRef.of(manifest))
    return [
        MissingReference(ref, tuple(sorted(needed[ref])))
        for ref in sorted(needed)
        if cluster.get(ref) is None
    ]
