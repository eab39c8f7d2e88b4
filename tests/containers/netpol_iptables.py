"""Test-only enforcement of rendered NetworkPolicies: a pod's egress rules as iptables rules.

No CNI plugin enforces NetworkPolicies here, so the podman kubelet (podman_kubelet.py) stands
in for one, for the **egress** of the user pods it runs: the policies that select a pod
(``policyTypes`` with Egress) become an allow-list on the OUTPUT chain of the container's
own network namespace, then everything else is rejected. Pure: it returns iptables argument
lists; the kubelet runs them with ``nsenter``.

Translated: ``podSelector`` peers (the IPs of matching pods when the pod starts),
``namespaceSelector: {}`` (every pod: the pod network's subnet), ``ipBlock`` with
``except`` (a chain that returns for each exception), numeric ports with protocols.
Not translated, said plainly: ingress rules, named ports, non-empty namespace selectors,
IPv6 blocks (the podman network has no IPv6), and pods that start after the rules were
written (a policy allowing pod-to-pod traffic would miss them; labfleet's do not need it).
Rejecting (not dropping) makes a blocked probe fail at once instead of timing out.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

Selector = Mapping[str, Any]
#: (namespace, podSelector) -> IPs of the pods it selects
PodIps = Callable[[str, Selector], list[str]]


def selects(selector: Selector, labels: Mapping[str, str]) -> bool:
    """``matchLabels`` and ``matchExpressions`` (In, NotIn, Exists, DoesNotExist)."""
    for key, value in (selector.get("matchLabels") or {}).items():
        if labels.get(key) != value:
            return False
    for expression in selector.get("matchExpressions") or []:
        key, operator = expression["key"], expression["operator"]
        values = expression.get("values") or []
        if operator == "In" and labels.get(key) not in values:
            return False
        if operator == "NotIn" and labels.get(key) in values:
            return False
        if operator == "Exists" and key not in labels:
            return False
        if operator == "DoesNotExist" and key in labels:
            return False
    return True


def egress_policies(
    policies: list[dict[str, Any]], labels: Mapping[str, str]
) -> list[dict[str, Any]]:
    return [
        p
        for p in policies
        if "Egress" in (p["spec"].get("policyTypes") or [])
        and selects(p["spec"].get("podSelector") or {}, labels)
    ]


def _ports(rule: dict[str, Any]) -> list[list[str]]:
    ports = rule.get("ports") or []
    if not ports:
        return [[]]
    out = []
    for port in ports:
        protocol = str(port.get("protocol", "TCP")).lower()
        if "port" not in port:
            out.append(["-p", protocol])
            continue
        if not isinstance(port["port"], int):
            raise ValueError(f"named port {port['port']!r} is not translated")
        out.append(["-p", protocol, "--dport", str(port["port"])])
    return out


def egress_rules(
    policies: list[dict[str, Any]],
    namespace: str,
    labels: Mapping[str, str],
    pod_ips: PodIps,
    pod_subnet: str,
) -> list[list[str]]:
    """iptables argument lists for a pod, or [] when no policy restricts its egress."""
    selected = egress_policies(policies, labels)
    if not selected:
        return []
    rules: list[list[str]] = [
        ["-A", "OUTPUT", "-o", "lo", "-j", "ACCEPT"],
        ["-A", "OUTPUT", "-m", "conntrack", "--ctstate", "ESTABLISHED,RELATED", "-j", "ACCEPT"],
    ]
    chains = 0
    for policy in selected:
        for rule in policy["spec"].get("egress") or []:
            peers = rule.get("to") or [None]
            for ports in _ports(rule):
                for peer in peers:
                    if peer is None:
                        rules.append(["-A", "OUTPUT", *ports, "-j", "ACCEPT"])
                    elif "ipBlock" in peer:
                        block = peer["ipBlock"]
                        if ":" in block["cidr"]:
                            continue  # no IPv6 on the podman network
                        chains += 1
                        chain = f"LF-EGRESS-{chains}"
                        rules.append(["-N", chain])
                        for excepted in block.get("except") or []:
                            rules.append(["-A", chain, "-d", excepted, "-j", "RETURN"])
                        rules.append(["-A", chain, "-j", "ACCEPT"])
                        rules.append(["-A", "OUTPUT", "-d", block["cidr"], *ports, "-j", chain])
                    else:
                        for ip in _peer_ips(peer, namespace, pod_ips, pod_subnet):
                            rules.append(["-A", "OUTPUT", "-d", ip, *ports, "-j", "ACCEPT"])
    rules.append(["-A", "OUTPUT", "-j", "REJECT"])
    return rules


def _peer_ips(peer: dict[str, Any], namespace: str, pod_ips: PodIps, subnet: str) -> list[str]:
    if "namespaceSelector" in peer:
        if peer["namespaceSelector"] or peer.get("podSelector"):
            raise ValueError(f"peer {peer} is not translated (only namespaceSelector: {{}})")
        return [subnet]
    return sorted(set(pod_ips(namespace, peer.get("podSelector") or {})))
