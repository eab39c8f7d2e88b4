"""How to reach the hub once applied: Ingress host, load balancer address or port-forward.

Reads the live Ingress and Services that were rendered, because the
address of a load balancer only exists once the cloud has assigned it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from labfleet.kube.apply.cluster import Cluster
from labfleet.kube.apply.refs import Manifest, ObjectRef
from labfleet.kube.apply.results import Endpoint

PUBLIC_SUFFIX = "-proxy-public"


def _ingress_endpoint(live: dict[str, Any]) -> Endpoint | None:
    spec = live.get("spec") or {}
    tls_hosts = {h for tls in spec.get("tls") or [] for h in tls.get("hosts") or []}
    for rule in spec.get("rules") or []:
        host = rule.get("host")
        if host:
            scheme = "https" if host in tls_hosts or (not tls_hosts and _gke(live)) else "http"
            return Endpoint(
                f"{scheme}://{host}/", f"Ingress {live['metadata']['name']} serves {host}"
            )
    return None


def _gke(live: dict[str, Any]) -> bool:
    annotations = (live.get("metadata") or {}).get("annotations") or {}
    return "networking.gke.io/managed-certificates" in annotations


def _service_endpoint(live: dict[str, Any]) -> Endpoint:
    meta, spec = live["metadata"], live.get("spec") or {}
    name, namespace = meta["name"], meta.get("namespace", "default")
    ports = spec.get("ports") or [{}]
    port = int(ports[0].get("port", 80))
    if spec.get("type") == "LoadBalancer":
        ingress = ((live.get("status") or {}).get("loadBalancer") or {}).get("ingress") or []
        if ingress:
            address = ingress[0].get("ip") or ingress[0].get("hostname")
            suffix = "" if port == 80 else f":{port}"
            return Endpoint(f"http://{address}{suffix}/", f"load balancer of service/{name}")
        return Endpoint(
            None,
            "waiting for the cloud to assign an address: "
            f"kubectl -n {namespace} get service {name} -w",
        )
    return Endpoint(
        "http://127.0.0.1:8000/",
        f"kubectl -n {namespace} port-forward service/{name} 8000:{port}  "
        "(then open http://127.0.0.1:8000/)",
    )


def find_endpoint(cluster: Cluster, manifests: Sequence[Manifest]) -> Endpoint | None:
    refs = [ObjectRef.of(m) for m in manifests]
    for ref in refs:
        if ref.kind == "Ingress":
            live = cluster.get(ref)
            found = _ingress_endpoint(live) if live else None
            if found:
                return found
    services = [r for r in refs if r.kind == "Service"]
    public = [r for r in services if r.name.endswith(PUBLIC_SUFFIX)]
    balancers = [
        m
        for m in manifests
        if m.get("kind") == "Service" and (m.get("spec") or {}).get("type") == "LoadBalancer"
    ]
    for ref in public or [ObjectRef.of(m) for m in balancers]:
        live = cluster.get(ref)
        if live is not None:
            return _service_endpoint(live)
    return None
