"""Users' pods and volumes: created by KubeSpawner in the hub, not rendered by us.

They carry our instance label and component ``singleuser-server`` (pods;
set through KubeSpawner's ``extra_labels``), so status and destroy can find
them in the hub namespace and in per-user namespaces alike.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from labfleet.kube.apply.cluster import Cluster
from labfleet.kube.apply.refs import INSTANCE_LABEL, ObjectRef, Target
from labfleet.kube.apply.results import UserPod

COMPONENT_LABEL = "app.kubernetes.io/component"
USER_COMPONENT = "singleuser-server"
ALL_NAMESPACES = "*"


def user_pods(cluster: Cluster, target: Target) -> Iterator[dict[str, Any]]:
    labels = {INSTANCE_LABEL: target.instance, COMPONENT_LABEL: USER_COMPONENT}
    yield from cluster.list("v1", "Pod", namespace=ALL_NAMESPACES, labels=labels)


def user_volumes(cluster: Cluster, target: Target) -> Iterator[dict[str, Any]]:
    """Every PVC labelled with our instance (hub database and users' homes)."""
    labels = {INSTANCE_LABEL: target.instance}
    yield from cluster.list("v1", "PersistentVolumeClaim", namespace=ALL_NAMESPACES, labels=labels)


def describe_pod(pod: dict[str, Any]) -> UserPod:
    meta = pod.get("metadata") or {}
    status = pod.get("status") or {}
    annotations = meta.get("annotations") or {}
    labels = meta.get("labels") or {}
    ready = any(
        c.get("type") == "Ready" and c.get("status") == "True"
        for c in status.get("conditions") or []
    )
    return UserPod(
        name=meta.get("name", ""),
        namespace=meta.get("namespace", ""),
        user=annotations.get("hub.jupyter.org/username")
        or labels.get("hub.jupyter.org/username", ""),
        server=annotations.get("hub.jupyter.org/servername")
        or labels.get("hub.jupyter.org/servername", ""),
        phase=status.get("phase", "Unknown"),
        ready=ready,
        ip=status.get("podIP"),
    )


def ref_of(obj: dict[str, Any], api_version: str, kind: str) -> ObjectRef:
    meta = obj.get("metadata") or {}
    return ObjectRef(api_version, kind, meta.get("namespace", ""), meta.get("name", ""))
