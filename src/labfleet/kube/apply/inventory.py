"""What labfleet owns on a cluster: the inventory ConfigMap and the label sweep.

Two sources, because each alone can miss something: the inventory
(ConfigMap ``<instance>-inventory``, the exact list the last successful apply
wrote) remembers objects whose labels someone removed; the label sweep finds
objects a failed apply created before it could write the inventory.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from labfleet.kube.apply.cluster import Cluster, ClusterError
from labfleet.kube.apply.refs import (
    Manifest,
    ObjectRef,
    Target,
)
from labfleet.kube.apply.resources import CUSTOM_KINDS

INVENTORY_KEY = "objects"
COMPONENT_LABEL = "app.kubernetes.io/component"

#: Kinds the label sweep lists (besides those rendered or in the inventory).
SWEEP_KINDS: tuple[tuple[str, str], ...] = (
    ("v1", "Namespace"),
    ("v1", "ServiceAccount"),
    ("v1", "Secret"),
    ("v1", "ConfigMap"),
    ("v1", "PersistentVolumeClaim"),
    ("v1", "Service"),
    ("v1", "ResourceQuota"),
    ("v1", "LimitRange"),
    ("apps/v1", "Deployment"),
    ("apps/v1", "DaemonSet"),
    ("apps/v1", "StatefulSet"),
    ("batch/v1", "CronJob"),
    ("rbac.authorization.k8s.io/v1", "Role"),
    ("rbac.authorization.k8s.io/v1", "RoleBinding"),
    ("rbac.authorization.k8s.io/v1", "ClusterRole"),
    ("rbac.authorization.k8s.io/v1", "ClusterRoleBinding"),
    ("networking.k8s.io/v1", "NetworkPolicy"),
    ("networking.k8s.io/v1", "Ingress"),
    ("policy/v1", "PodDisruptionBudget"),
    ("scheduling.k8s.io/v1", "PriorityClass"),
    *((f"{group}/{version}", kind) for group, version, kind, _, _ in CUSTOM_KINDS),
)


def inventory_name(target: Target) -> str:
    return f"{target.instance}-inventory"


def inventory_ref(target: Target) -> ObjectRef:
    return ObjectRef("v1", "ConfigMap", target.namespace, inventory_name(target))


def inventory_manifest(target: Target, refs: Iterable[ObjectRef]) -> Manifest:
    """The ConfigMap listing every object one apply rendered (one per line)."""
    lines = sorted({ref.encode() for ref in refs if ref != inventory_ref(target)})
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": inventory_name(target),
            "namespace": target.namespace,
            "labels": {
                **target.selector(),
                COMPONENT_LABEL: "inventory",
            },
            "annotations": {
                "labfleet.io/description": "objects owned by this labfleet instance; used to prune"
            },
        },
        "data": {INVENTORY_KEY: "\n".join(lines) + "\n"},
    }


def parse_inventory(configmap: dict[str, Any] | None) -> set[ObjectRef]:
    if not configmap:
        return set()
    text = (configmap.get("data") or {}).get(INVENTORY_KEY, "")
    refs = set()
    for line in str(text).splitlines():
        if line.count("|") == 3:
            refs.add(ObjectRef.decode(line))
    return refs


def is_ours(obj: dict[str, Any], target: Target) -> bool:
    labels = (obj.get("metadata") or {}).get("labels") or {}
    return all(labels.get(key) == value for key, value in target.selector().items())


def owned_objects(
    cluster: Cluster,
    target: Target,
    *,
    namespaces: Iterable[str] = (),
    kinds: Iterable[tuple[str, str]] = (),
) -> dict[ObjectRef, dict[str, Any]]:
    """Live objects of ``target``: labelled ours, or listed in the inventory.

    Inventory entries are only trusted when the live object still carries
    our labels: an object someone else took over is not ours to delete.
    """
    inventory = parse_inventory(cluster.get(inventory_ref(target)))
    where = {target.namespace, *namespaces, *(r.namespace for r in inventory if r.namespace)}
    needed = {*kinds, *((r.api_version, r.kind) for r in inventory)}
    found: dict[ObjectRef, dict[str, Any]] = {}
    for api_version, kind in dict.fromkeys([*SWEEP_KINDS, *needed]):
        probe = ObjectRef(api_version, kind, "x", "x")
        for namespace in sorted(where) if probe.namespaced else [None]:
            try:
                listed = list(
                    cluster.list(api_version, kind, namespace=namespace, labels=target.selector())
                )
            except ClusterError as error:
                # A person allowed to manage labfleet's objects may not be allowed
                # to list kinds labfleet never rendered for them; nothing of ours there.
                if error.code == 403 and (api_version, kind) not in needed:
                    continue
                raise
            for obj in listed:
                found[ObjectRef.of(obj)] = obj
    for ref in inventory - set(found):
        live = cluster.get(ref)
        if live is not None and is_ours(live, target):
            found[ref] = live
    return found
