"""NetworkPolicies, safe by default.

* users' pods: in from the hub and the proxy only; out to the hub API, the
  proxy, DNS and the public internet — never the cloud metadata server,
  other users' pods or private ranges (unless listed in
  ``kubernetes.network.allowed_private_ranges``);
* the proxy: its public port from anywhere, its API port from the hub only;
* the hub: in from the proxy and users' pods, out anywhere but the metadata server.

With GKE Workload Identity, the per-node metadata server (port 988) is
allowed instead: it hands out only the pod's own federated identity.
"""

from __future__ import annotations

from typing import Any

from labfleet.config.kube import GcsFuseStorage
from labfleet.config.model import FleetConfig
from labfleet.kube import load_balancer_tls
from labfleet.kube.meta import (
    COMPONENT_HUB,
    COMPONENT_PROXY,
    COMPONENT_USER,
    HUB_PORT,
    PROXY_API_PORT,
    PROXY_PORT,
    USER_NAMESPACE_OF,
    Manifest,
    manifest,
    metadata,
    names_of,
    selector,
    user_pod_labels,
)

PRIVATE_V4 = ["10.0.0.0/8", "100.64.0.0/10", "169.254.0.0/16", "172.16.0.0/12", "192.168.0.0/16"]
PRIVATE_V6 = ["fc00::/7", "fe80::/10"]
METADATA_V4 = "169.254.169.254/32"
METADATA_V6 = "fd00:ec2::254/128"
#: GKE Workload Identity metadata server: Dataplane V2 address, and the legacy one.
GKE_METADATA_PEERS = ["169.254.169.252/32", "127.0.0.1/32"]
GKE_METADATA_PORT = 988
DNS_PORTS = [{"port": 53, "protocol": "UDP"}, {"port": 53, "protocol": "TCP"}]


def _tcp(port: int | str) -> dict[str, Any]:
    return {"port": port, "protocol": "TCP"}


def _pods(config: FleetConfig, component: str, *, other_namespace: bool) -> dict[str, Any]:
    peer: dict[str, Any] = {"podSelector": {"matchLabels": selector(config, component)}}
    if other_namespace:
        peer["namespaceSelector"] = {
            "matchLabels": {"kubernetes.io/metadata.name": config.kubernetes.namespace}
        }
    return peer


def _user_pods_peer(config: FleetConfig) -> dict[str, Any]:
    """Users' pods as a peer of the hub/proxy policies (any of our user namespaces)."""
    peer: dict[str, Any] = {"podSelector": {"matchLabels": user_pod_labels(config)}}
    if config.kubernetes.users.namespaces == "per-user":
        peer["namespaceSelector"] = {"matchLabels": {USER_NAMESPACE_OF: config.name}}
    return peer


def gke_metadata_allowed(config: FleetConfig) -> bool:
    kube = config.kubernetes
    if kube.network.gke_metadata_server is not None:
        return kube.network.gke_metadata_server
    uses_gcs = any(isinstance(s, GcsFuseStorage) for s in kube.all_storages())
    return uses_gcs or kube.users.workload_identity is not None


def internet_peers() -> list[dict[str, Any]]:
    return [
        {"ipBlock": {"cidr": "0.0.0.0/0", "except": PRIVATE_V4}},
        {"ipBlock": {"cidr": "::/0", "except": PRIVATE_V6}},
    ]


def user_egress(config: FleetConfig, *, other_namespace: bool) -> list[dict[str, Any]]:
    rules: list[dict[str, Any]] = [
        {
            "to": [_pods(config, COMPONENT_HUB, other_namespace=other_namespace)],
            "ports": [_tcp(HUB_PORT)],
        },
        {
            "to": [_pods(config, COMPONENT_PROXY, other_namespace=other_namespace)],
            "ports": [_tcp(PROXY_PORT)],
        },
        {"ports": DNS_PORTS},
        {"to": internet_peers()},
    ]
    allowed = config.kubernetes.network.allowed_private_ranges
    if allowed:
        rules.append({"to": [{"ipBlock": {"cidr": str(n)}} for n in allowed]})
    if gke_metadata_allowed(config):
        rules.append(
            {
                "to": [{"ipBlock": {"cidr": cidr}} for cidr in GKE_METADATA_PEERS],
                "ports": [_tcp(GKE_METADATA_PORT)],
            }
        )
    return rules


def user_policy_spec(config: FleetConfig, *, other_namespace: bool) -> dict[str, Any]:
    return {
        "podSelector": {"matchLabels": user_pod_labels(config)},
        "policyTypes": ["Ingress", "Egress"],
        "ingress": [
            {
                "from": [
                    _pods(config, COMPONENT_HUB, other_namespace=other_namespace),
                    _pods(config, COMPONENT_PROXY, other_namespace=other_namespace),
                ]
            }
        ],
        "egress": user_egress(config, other_namespace=other_namespace),
    }


def users_policy(config: FleetConfig) -> Manifest:
    names = names_of(config)
    return manifest(
        "networking.k8s.io/v1",
        "NetworkPolicy",
        metadata(config, names.users, COMPONENT_USER),
        spec=user_policy_spec(config, other_namespace=False),
    )


def hub_policy(config: FleetConfig) -> Manifest:
    names = names_of(config)
    spec = {
        "podSelector": {"matchLabels": selector(config, COMPONENT_HUB)},
        "policyTypes": ["Ingress", "Egress"],
        "ingress": [
            {
                "from": [
                    _pods(config, COMPONENT_PROXY, other_namespace=False),
                    _user_pods_peer(config),
                    # services the hub runs (the idle culler) call its API through the Service
                    _pods(config, COMPONENT_HUB, other_namespace=False),
                ],
                "ports": [_tcp(HUB_PORT)],
            }
        ],
        "egress": [
            # users' pods, the proxy API and the Kubernetes API (often a private address)
            {"to": [{"namespaceSelector": {}}]},
            {
                "to": [
                    {"ipBlock": {"cidr": "0.0.0.0/0", "except": [METADATA_V4]}},
                    {"ipBlock": {"cidr": "::/0", "except": [METADATA_V6]}},
                ]
            },
        ],
    }
    return manifest(
        "networking.k8s.io/v1",
        "NetworkPolicy",
        metadata(config, names.hub, COMPONENT_HUB),
        spec=spec,
    )


def proxy_policy(config: FleetConfig) -> Manifest:
    names = names_of(config)
    spec = {
        "podSelector": {"matchLabels": selector(config, COMPONENT_PROXY)},
        "policyTypes": ["Ingress", "Egress"],
        "ingress": [
            # browsers, the load balancer, users' pods (and the https redirect, if any)
            {"ports": [_tcp(PROXY_PORT), *load_balancer_tls.policy_ports(config)]},
            {
                "from": [_pods(config, COMPONENT_HUB, other_namespace=False)],
                "ports": [_tcp(PROXY_API_PORT)],
            },
        ],
        "egress": [
            {
                "to": [_pods(config, COMPONENT_HUB, other_namespace=False)],
                "ports": [_tcp(HUB_PORT)],
            },
            {"to": [_user_pods_peer(config)]},
            {"ports": DNS_PORTS},
        ],
    }
    return manifest(
        "networking.k8s.io/v1",
        "NetworkPolicy",
        metadata(config, names.proxy, COMPONENT_PROXY),
        spec=spec,
    )


def network_policies(config: FleetConfig) -> list[Manifest]:
    if not config.kubernetes.network.policies:
        return []
    policies = [hub_policy(config), proxy_policy(config)]
    if config.kubernetes.users.namespaces == "shared":
        policies.append(users_policy(config))
    return policies
