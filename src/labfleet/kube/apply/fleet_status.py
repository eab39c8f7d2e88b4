"""``status``: the hub, the proxy and users' pods of one instance, as the cluster sees them."""

from __future__ import annotations

from labfleet.kube.apply.cluster import Cluster
from labfleet.kube.apply.endpoint import find_endpoint
from labfleet.kube.apply.inventory import inventory_ref
from labfleet.kube.apply.refs import ObjectRef, Target
from labfleet.kube.apply.results import FleetStatus, WorkloadStatus
from labfleet.kube.apply.rollout import pods_of, workload_state
from labfleet.kube.apply.users import COMPONENT_LABEL, describe_pod, user_pods, user_volumes

WORKLOAD_KINDS = (("apps/v1", "Deployment"), ("apps/v1", "StatefulSet"), ("apps/v1", "DaemonSet"))


def status(cluster: Cluster, target: Target) -> FleetStatus:
    installed = cluster.get(inventory_ref(target)) is not None
    workloads = []
    for api_version, kind in WORKLOAD_KINDS:
        for live in cluster.list(
            api_version, kind, namespace=target.namespace, labels=target.selector()
        ):
            ref = ObjectRef.of(live)
            state = workload_state(ref, live, 0.0)
            if not state.done:
                state = workload_state(ref, live, 0.0, pods_of(cluster, ref, live))
            component = ((live.get("metadata") or {}).get("labels") or {}).get(COMPONENT_LABEL, "")
            workloads.append(
                WorkloadStatus(ref, component, state.ready, state.desired, state.message)
            )
    pods = sorted(
        (describe_pod(p) for p in user_pods(cluster, target)), key=lambda p: (p.user, p.server)
    )
    volumes = sorted(
        f"{(v.get('metadata') or {}).get('namespace')}/{(v.get('metadata') or {}).get('name')}"
        for v in user_volumes(cluster, target)
    )
    routes = [
        obj
        for api_version, kind in (("networking.k8s.io/v1", "Ingress"), ("v1", "Service"))
        for obj in cluster.list(
            api_version, kind, namespace=target.namespace, labels=target.selector()
        )
    ]
    return FleetStatus(
        target,
        installed or bool(workloads),
        tuple(sorted(workloads, key=lambda w: w.ref)),
        tuple(pods),
        find_endpoint(cluster, routes) if routes else None,
        tuple(volumes),
    )
