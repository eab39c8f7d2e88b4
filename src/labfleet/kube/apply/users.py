"""Users' pods, volumes and namespaces: created by KubeSpawner in the hub, not rendered by us.

They carry our instance label (pods and volumes also component
``singleuser-server`` via KubeSpawner's labels), so status and destroy find
them in the hub namespace and in per-user namespaces (labelled
``labfleet.io/user-namespace-of: <instance>``). A per-user namespace that
names another hub namespace (``labfleet.io/hub-namespace``) belongs to a
same-named instance elsewhere and is left alone.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from labfleet.kube.apply.cluster import Cluster, ClusterError
from labfleet.kube.apply.refs import HUB_NAMESPACE_LABEL, INSTANCE_LABEL, ObjectRef, Target
from labfleet.kube.apply.results import UserPod

COMPONENT_LABEL = "app.kubernetes.io/component"
USER_COMPONENT = "singleuser-server"
USER_NAMESPACE_OF = "labfleet.io/user-namespace-of"
ALL_NAMESPACES = "*"


def _labels(obj: dict[str, Any]) -> dict[str, str]:
    return dict((obj.get("metadata") or {}).get("labels") or {})


def _forbidden(error: ClusterError) -> bool:
    return error.code == 403


def user_namespaces(cluster: Cluster, target: Target) -> list[dict[str, Any]]:
    """Per-user namespaces of this instance (none with ``users.namespaces: shared``).

    Someone allowed to list namespaces only in the hub's (``cluster_scoped: false``: a
    namespace owner's rights) has none: per-user namespaces need cluster rights.
    """
    try:
        found = list(
            cluster.list(
                "v1", "Namespace", namespace=None, labels={USER_NAMESPACE_OF: target.instance}
            )
        )
    except ClusterError as error:
        if _forbidden(error):
            return []
        raise
    return [
        ns
        for ns in found
        if _labels(ns).get(HUB_NAMESPACE_LABEL, target.namespace) == target.namespace
        and ns["metadata"]["name"] != target.namespace
    ]


def _ours(
    cluster: Cluster, target: Target, listed: Iterator[dict[str, Any]]
) -> list[dict[str, Any]]:
    objects = list(listed)
    if not objects:
        return []
    allowed = {target.namespace} | {
        ns["metadata"]["name"] for ns in user_namespaces(cluster, target)
    }
    return [o for o in objects if (o.get("metadata") or {}).get("namespace") in allowed]


def _everywhere(
    cluster: Cluster, target: Target, kind: str, labels: dict[str, str]
) -> list[dict[str, Any]]:
    """Objects of ``kind`` in every namespace, or in the hub's when only that may be read."""
    try:
        return list(cluster.list("v1", kind, namespace=ALL_NAMESPACES, labels=labels))
    except ClusterError as error:
        if not _forbidden(error):
            raise
    return list(cluster.list("v1", kind, namespace=target.namespace, labels=labels))


def user_pods(cluster: Cluster, target: Target) -> list[dict[str, Any]]:
    labels = {INSTANCE_LABEL: target.instance, COMPONENT_LABEL: USER_COMPONENT}
    return _ours(cluster, target, iter(_everywhere(cluster, target, "Pod", labels)))


def user_volumes(cluster: Cluster, target: Target) -> list[dict[str, Any]]:
    """Every PVC labelled with our instance (hub database and users' homes)."""
    labels = {INSTANCE_LABEL: target.instance}
    listed = _everywhere(cluster, target, "PersistentVolumeClaim", labels)
    return _ours(cluster, target, iter(listed))


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
