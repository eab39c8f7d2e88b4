"""NetworkPolicies, checked by evaluating them: who may talk to whom.

A small evaluator of the NetworkPolicy semantics we use (matchLabels
selectors, ipBlock with except, ports) answers the questions of
BAD_INPUTS 55 for the rendered policies: can a user's pod reach the cloud
metadata server, the proxy API, another user's pod, a private range?
ipBlocks are also applied to pod IPs, the stricter reading of the spec.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from typing import Any

import pytest

from labfleet.config.load import parse_text
from labfleet.config.model import FleetConfig
from labfleet.kube.meta import selector, user_pod_labels
from labfleet.kube.render import render_objects
from labfleet.kube.user_namespace import user_namespace_name, user_namespace_objects
from tests.kube.test_render_helpers import FIXED_SECRETS, load_example


@dataclass(frozen=True)
class Peer:
    ip: str
    namespace: str = ""
    labels: dict[str, str] = field(default_factory=dict)
    namespace_labels: dict[str, str] = field(default_factory=dict)

    @property
    def is_pod(self) -> bool:
        return bool(self.namespace)


def _matches(selector_: dict[str, Any] | None, labels: dict[str, str]) -> bool:
    wanted = (selector_ or {}).get("matchLabels") or {}
    return all(labels.get(k) == v for k, v in wanted.items())


def _peer_matches(rule_peer: dict[str, Any], peer: Peer, policy_namespace: str) -> bool:
    if "ipBlock" in rule_peer:
        block = rule_peer["ipBlock"]
        address = ipaddress.ip_address(peer.ip)
        network = ipaddress.ip_network(block["cidr"])
        if address.version != network.version or address not in network:
            return False
        return not any(
            address in ipaddress.ip_network(e)
            for e in block.get("except", [])
            if ipaddress.ip_network(e).version == address.version
        )
    if not peer.is_pod:
        return False
    if "namespaceSelector" in rule_peer:
        if not _matches(rule_peer["namespaceSelector"], peer.namespace_labels):
            return False
    elif peer.namespace != policy_namespace:
        return False
    return _matches(rule_peer.get("podSelector"), peer.labels)


def _port_matches(ports: list[dict[str, Any]] | None, port: int, protocol: str) -> bool:
    if not ports:
        return True
    return any(p["port"] == port and p.get("protocol", "TCP") == protocol for p in ports)


def allowed(
    policies: list[dict[str, Any]],
    source: Peer,
    destination: Peer,
    port: int,
    protocol: str = "TCP",
) -> bool:
    """Egress of ``source`` and (for pod destinations) ingress of ``destination`` both allow it."""

    def direction_allows(pod: Peer, other: Peer, kind: str, key: str, peers_key: str) -> bool:
        selecting = [
            p for p in policies
            if p["metadata"]["namespace"] == pod.namespace
            and kind in p["spec"]["policyTypes"]
            and _matches(p["spec"]["podSelector"], pod.labels)
        ]  # fmt: skip
        if not selecting:
            return True
        for policy in selecting:
            for rule in policy["spec"].get(key) or []:
                peers = rule.get(peers_key)
                peer_ok = not peers or any(_peer_matches(r, other, pod.namespace) for r in peers)
                if peer_ok and _port_matches(rule.get("ports"), port, protocol):
                    return True
        return False

    out_ok = direction_allows(source, destination, "Egress", "egress", "to")
    in_ok = (not destination.is_pod) or direction_allows(
        destination, source, "Ingress", "ingress", "from"
    )
    return out_ok and in_ok


def policies_of(config: FleetConfig, usernames: tuple[str, ...] = ()) -> list[dict[str, Any]]:
    objects = render_objects(config, FIXED_SECRETS)
    for username in usernames:
        objects += user_namespace_objects(config, username)
    return [o for o in objects if o["kind"] == "NetworkPolicy"]


def ns_labels(name: str) -> dict[str, str]:
    return {"kubernetes.io/metadata.name": name}


def hub_pod(config: FleetConfig) -> Peer:
    ns = config.kubernetes.namespace
    return Peer("10.4.0.2", ns, selector(config, "hub"), ns_labels(ns))


def proxy_pod(config: FleetConfig) -> Peer:
    ns = config.kubernetes.namespace
    return Peer("10.4.0.3", ns, selector(config, "proxy"), ns_labels(ns))


def user_pod(config: FleetConfig, username: str, ip: str) -> Peer:
    labels = {**user_pod_labels(config), "component": "singleuser-server"}
    if config.kubernetes.users.namespaces == "per-user":
        from labfleet.kube.user_namespace import user_namespace_labels

        ns = user_namespace_name(config, username)
        return Peer(ip, ns, labels, {**user_namespace_labels(config), **ns_labels(ns)})
    ns = config.kubernetes.namespace
    return Peer(ip, ns, labels, ns_labels(ns))


EXTERNAL = {
    "metadata": Peer("169.254.169.254"),
    "metadata-v6": Peer("fd00:ec2::254"),
    "gke-metadata": Peer("169.254.169.252"),
    "internet": Peer("93.184.216.34"),
    "internet-v6": Peer("2606:2800:220:1:248:1893:25c8:1946"),
    "rfc1918-10": Peer("10.0.0.1"),
    "rfc1918-172": Peer("172.16.5.4"),
    "rfc1918-192": Peer("192.168.1.1"),
    "cgnat": Peer("100.64.0.1"),
    "link-local": Peer("169.254.1.1"),
    "ula": Peer("fd12:3456::1"),
}


@pytest.fixture(params=["minimal", "google-hardened"])
def fleet(request: pytest.FixtureRequest) -> tuple[FleetConfig, list[dict[str, Any]]]:
    """One shared-namespace and one per-user-namespace fleet, with alice and bob."""
    config = load_example(request.param)
    return config, policies_of(config, ("alice", "bob") if request.param != "minimal" else ())


def test_user_reaches_hub_api_proxy_dns_and_internet(fleet: Any) -> None:
    config, policies = fleet
    alice = user_pod(config, "alice", "10.4.1.10")
    assert allowed(policies, alice, hub_pod(config), 8081)
    assert allowed(policies, alice, proxy_pod(config), 8000)
    assert allowed(policies, alice, Peer("10.96.0.10"), 53, "UDP")
    assert allowed(policies, alice, EXTERNAL["internet"], 443)
    assert allowed(policies, alice, EXTERNAL["internet-v6"], 443)


@pytest.mark.parametrize(
    "target",
    ["metadata", "metadata-v6", "gke-metadata", "rfc1918-10", "rfc1918-172", "rfc1918-192",
     "cgnat", "link-local", "ula"],
)  # fmt: skip
def test_user_cannot_reach_metadata_or_private_ranges(fleet: Any, target: str) -> None:
    config, policies = fleet
    alice = user_pod(config, "alice", "10.4.1.10")
    for port in (80, 443, 8080):
        assert not allowed(policies, alice, EXTERNAL[target], port), (target, port)


def test_user_cannot_reach_proxy_api_other_hub_ports_or_other_users(fleet: Any) -> None:
    config, policies = fleet
    alice = user_pod(config, "alice", "10.4.1.10")
    bob = user_pod(config, "bob", "10.4.1.11")
    assert not allowed(policies, alice, proxy_pod(config), 8001)
    assert not allowed(policies, alice, hub_pod(config), 22)
    assert not allowed(policies, alice, bob, 8888)
    assert not allowed(policies, bob, alice, 8888)


def test_only_hub_and_proxy_reach_users(fleet: Any) -> None:
    config, policies = fleet
    alice = user_pod(config, "alice", "10.4.1.10")
    assert allowed(policies, proxy_pod(config), alice, 8888)
    assert allowed(policies, hub_pod(config), alice, 8888)
    stranger = Peer("10.4.9.9", "default", {"app": "x"}, ns_labels("default"))
    assert not allowed(policies, stranger, alice, 8888)


def test_proxy_api_only_from_hub(fleet: Any) -> None:
    config, policies = fleet
    assert allowed(policies, hub_pod(config), proxy_pod(config), 8001)
    stranger = Peer("10.4.9.9", "default", {"app": "x"}, ns_labels("default"))
    assert not allowed(policies, stranger, proxy_pod(config), 8001)
    assert allowed(policies, stranger, proxy_pod(config), 8000)  # the public port
    assert not allowed(policies, stranger, hub_pod(config), 8081)


def test_hub_never_reaches_metadata(fleet: Any) -> None:
    config, policies = fleet
    assert not allowed(policies, hub_pod(config), EXTERNAL["metadata"], 80)
    assert not allowed(policies, hub_pod(config), EXTERNAL["metadata-v6"], 80)
    assert allowed(policies, hub_pod(config), EXTERNAL["internet"], 443)
    assert allowed(policies, hub_pod(config), proxy_pod(config), 8001)


def test_allowed_private_ranges_open_only_that_range() -> None:
    config = load_example("google-hardened")
    policies = policies_of(config, ("alice",))
    alice = user_pod(config, "alice", "10.4.1.10")
    assert allowed(policies, alice, Peer("10.20.0.5"), 5432)
    assert not allowed(policies, alice, Peer("10.20.1.5"), 5432)


def test_workload_identity_opens_only_the_gke_metadata_server_port() -> None:
    config = load_example("gke-iap")  # GCS FUSE + Workload Identity
    policies = policies_of(config)
    alice = user_pod(config, "alice", "10.4.1.10")
    assert allowed(policies, alice, EXTERNAL["gke-metadata"], 988)
    assert not allowed(policies, alice, EXTERNAL["gke-metadata"], 80)
    assert not allowed(policies, alice, EXTERNAL["metadata"], 80)


def test_policies_can_be_turned_off() -> None:
    config = parse_text("kubernetes: {network: {policies: false}}")
    assert policies_of(config) == []


def test_per_user_namespace_objects() -> None:
    config = parse_text(
        "name: datalab\nkubernetes: {namespace: datalab, users: {namespaces: per-user,"
        " per_user: {quota_cpu: 8, quota_memory: 32G, quota_pods: 2}}}"
    )
    objects = {o["kind"]: o for o in user_namespace_objects(config, "Alice@Example.org")}
    namespace = user_namespace_name(config, "Alice@Example.org")
    assert all(o["metadata"]["namespace"] == namespace for o in objects.values())
    assert objects["ServiceAccount"]["automountServiceAccountToken"] is False
    assert objects["ResourceQuota"]["spec"]["hard"] == {
        "limits.cpu": "8", "limits.memory": "32G", "pods": "2"
    }  # fmt: skip
    # what a profile without limits gets: the quota shared by quota_pods
    assert objects["LimitRange"]["spec"]["limits"] == [
        {"type": "Container", "default": {"cpu": "4", "memory": "16G"},
         "defaultRequest": {"cpu": "100m", "memory": "256Mi"}}
    ]  # fmt: skip


def test_workload_identity_annotation_per_user() -> None:
    config = parse_text(
        "kubernetes: {users: {namespaces: per-user, "
        "workload_identity: '{user_slug}@proj.iam.gserviceaccount.com'}}"
    )
    account = user_namespace_objects(config, "bob")[0]
    assert account["metadata"]["annotations"] == {
        "iam.gke.io/gcp-service-account": "bob@proj.iam.gserviceaccount.com"
    }


def test_hub_services_reach_the_hub_api_through_its_service(fleet: Any) -> None:
    """The idle culler runs inside the hub pod and calls the hub Service."""
    config, policies = fleet
    assert allowed(policies, hub_pod(config), hub_pod(config), 8081)
