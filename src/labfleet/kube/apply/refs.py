"""Identity, ownership labels and apply order of Kubernetes objects.

Pure: no client, no I/O. Every manifest labfleet renders carries
``app.kubernetes.io/managed-by: labfleet`` and
``app.kubernetes.io/instance: <name>``; those two labels are how the engine
recognises what it owns when it prunes and destroys.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from labfleet.kube.meta import HUB_NAMESPACE

Manifest = dict[str, Any]

MANAGED_BY_LABEL = "app.kubernetes.io/managed-by"
MANAGED_BY = "labfleet"
INSTANCE_LABEL = "app.kubernetes.io/instance"
#: Stamped by the engine on everything it applies: two instances may share a
#: name (the default, ``labfleet``) in different namespaces of one cluster,
#: and neither may prune the other's cluster-scoped objects.
HUB_NAMESPACE_LABEL = HUB_NAMESPACE  # the builders label everything with it too
FIELD_MANAGER = "labfleet"

#: Cluster-scoped kinds among those labfleet renders or meets.
CLUSTER_SCOPED = frozenset(
    {
        "Namespace",
        "ClusterRole",
        "ClusterRoleBinding",
        "PriorityClass",
        "StorageClass",
        "PersistentVolume",
        "ClusterIssuer",
        "CustomResourceDefinition",
    }
)

#: Apply order: what others refer to comes first (namespaces, accounts,
#: config and storage, RBAC), then networking, then workloads, then the
#: objects that route traffic to them. Unknown kinds go last. Prune and
#: destroy walk this order backwards.
KIND_ORDER: tuple[str, ...] = (
    "Namespace",
    "PriorityClass",
    "StorageClass",
    "ResourceQuota",
    "LimitRange",
    "ServiceAccount",
    "Secret",
    "ConfigMap",
    "PersistentVolume",
    "PersistentVolumeClaim",
    "ClusterRole",
    "ClusterRoleBinding",
    "Role",
    "RoleBinding",
    "NetworkPolicy",
    "BackendConfig",
    "FrontendConfig",
    "Service",
    "DaemonSet",
    "Deployment",
    "StatefulSet",
    "PodDisruptionBudget",
    "Issuer",
    "ClusterIssuer",
    "ManagedCertificate",
    "Certificate",
    "Ingress",
)
_RANK = {kind: index for index, kind in enumerate(KIND_ORDER)}


class ManifestError(ValueError):
    """A manifest the engine refuses before talking to the cluster."""


@dataclass(frozen=True, order=True)
class ObjectRef:
    """Which object: enough to GET, DELETE or list it."""

    api_version: str
    kind: str
    namespace: str
    name: str

    @classmethod
    def of(cls, manifest: Mapping[str, Any]) -> ObjectRef:
        meta = manifest.get("metadata") or {}
        try:
            api_version, kind, name = manifest["apiVersion"], manifest["kind"], meta["name"]
        except KeyError as error:
            raise ManifestError(
                f"manifest without {error.args[0]}: {dict(manifest)!r:.120}"
            ) from None
        namespace = "" if kind in CLUSTER_SCOPED else str(meta.get("namespace") or "")
        return cls(str(api_version), str(kind), namespace, str(name))

    @property
    def namespaced(self) -> bool:
        return self.kind not in CLUSTER_SCOPED

    def __str__(self) -> str:
        where = f" -n {self.namespace}" if self.namespace else ""
        return f"{self.kind.lower()}/{self.name}{where}"

    def encode(self) -> str:
        """One line of the inventory: ``apiVersion|kind|namespace|name``."""
        return "|".join((self.api_version, self.kind, self.namespace, self.name))

    @classmethod
    def decode(cls, line: str) -> ObjectRef:
        api_version, kind, namespace, name = line.split("|")
        return cls(api_version, kind, namespace, name)


def rank(ref: ObjectRef) -> tuple[int, ObjectRef]:
    return (_RANK.get(ref.kind, len(KIND_ORDER)), ref)


def apply_order(manifests: Iterable[Manifest]) -> list[Manifest]:
    """Manifests sorted so that nothing is applied before what it needs."""
    return sorted(manifests, key=lambda m: rank(ObjectRef.of(m)))


def delete_order(refs: Iterable[ObjectRef]) -> list[ObjectRef]:
    return sorted(refs, key=rank, reverse=True)


@dataclass(frozen=True)
class Target:
    """Where one labfleet instance lives: its name and its hub namespace."""

    instance: str
    namespace: str

    def selector(self) -> dict[str, str]:
        """Labels of every object this instance applied (see :func:`stamp`)."""
        return {
            MANAGED_BY_LABEL: MANAGED_BY,
            INSTANCE_LABEL: self.instance,
            HUB_NAMESPACE_LABEL: self.namespace,
        }


def stamp(manifest: Manifest, target: Target) -> Manifest:
    """A copy of ``manifest`` labelled with the instance's hub namespace."""
    meta = dict(manifest.get("metadata") or {})
    meta["labels"] = {**(meta.get("labels") or {}), HUB_NAMESPACE_LABEL: target.namespace}
    return {**manifest, "metadata": meta}


def target_of(manifests: Iterable[Manifest], namespace: str | None = None) -> Target:
    """The instance and namespace of a rendered fleet; refuse unlabelled manifests."""
    instances: set[str] = set()
    namespaces: Counter[str] = Counter()
    count = 0
    for manifest in manifests:
        count += 1
        ref = ObjectRef.of(manifest)
        labels = (manifest.get("metadata") or {}).get("labels") or {}
        if labels.get(MANAGED_BY_LABEL) != MANAGED_BY or not labels.get(INSTANCE_LABEL):
            raise ManifestError(
                f"{ref} lacks the labels {MANAGED_BY_LABEL}={MANAGED_BY} and {INSTANCE_LABEL}; "
                "labfleet only applies objects it can later find and prune"
            )
        instances.add(labels[INSTANCE_LABEL])
        if ref.namespaced:
            if not ref.namespace:
                raise ManifestError(f"{ref} is namespaced but has no metadata.namespace")
            namespaces[ref.namespace] += 1
    if count == 0:
        raise ManifestError("nothing to apply: the manifest list is empty")
    if len(instances) != 1:
        raise ManifestError(f"manifests belong to several instances: {sorted(instances)}")
    if namespace is None:
        if not namespaces:
            raise ManifestError("no namespaced object: cannot tell the hub namespace")
        namespace = namespaces.most_common(1)[0][0]
    return Target(instances.pop(), namespace)


def check_unique(manifests: Iterable[Manifest]) -> None:
    seen: set[ObjectRef] = set()
    for manifest in manifests:
        ref = ObjectRef.of(manifest)
        if ref in seen:
            raise ManifestError(f"{ref} is rendered twice")
        seen.add(ref)
