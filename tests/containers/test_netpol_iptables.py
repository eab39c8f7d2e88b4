"""The test-only NetworkPolicy enforcement reads labfleet's rendered policies as Kubernetes does.

Pure: the rendered objects in, iptables rules out (the podman kubelet runs them).
"""

from __future__ import annotations

import pytest

from labfleet.config.load import parse_text
from labfleet.kube.hub_secret import generate_hub_secrets
from labfleet.kube.meta import user_pod_labels
from labfleet.kube.render import render_objects
from tests.containers.netpol_iptables import egress_rules, selects

CONFIG = "name: lab\nkubernetes:\n  namespace: lab\n"
HUB_IP = "10.88.0.5"


def _pod_ips(namespace: str, selector: dict[str, object]) -> list[str]:
    hub = {"app.kubernetes.io/name": "labfleet", "app.kubernetes.io/instance": "lab"}
    found = []
    for component in ("hub", "proxy"):  # one podman pod holds both
        if selects(selector, {**hub, "app.kubernetes.io/component": component}):
            found.append(HUB_IP)
    return found


def test_a_user_pod_may_reach_hub_and_proxy_ports_and_the_internet_only() -> None:
    config = parse_text(CONFIG)
    policies = [
        o for o in render_objects(config, generate_hub_secrets()) if o["kind"] == "NetworkPolicy"
    ]
    rules = egress_rules(policies, "lab", user_pod_labels(config), _pod_ips, "10.88.0.0/16")
    accepts = [r for r in rules if r[:2] == ["-A", "OUTPUT"] and r[-1] == "ACCEPT"]
    assert ["-A", "OUTPUT", "-d", HUB_IP, "-p", "tcp", "--dport", "8081", "-j", "ACCEPT"] in accepts
    assert ["-A", "OUTPUT", "-d", HUB_IP, "-p", "tcp", "--dport", "8000", "-j", "ACCEPT"] in accepts
    # nothing accepts the proxy API port, other pods or the metadata server outright
    assert not [r for r in accepts if "8001" in r or "10.88.0.0/16" in r]
    internet = next(r for r in rules if r[:4] == ["-A", "OUTPUT", "-d", "0.0.0.0/0"])
    chain = internet[-1]
    returns = {r[3] for r in rules if r[:2] == ["-A", chain] and r[-1] == "RETURN"}
    assert {"10.0.0.0/8", "169.254.0.0/16"} <= returns
    assert rules[-1] == ["-A", "OUTPUT", "-j", "REJECT"]


def test_an_unselected_pod_is_not_restricted_and_odd_peers_are_refused() -> None:
    assert egress_rules([], "lab", {"a": "b"}, _pod_ips, "10.88.0.0/16") == []
    policy = {
        "spec": {
            "podSelector": {},
            "policyTypes": ["Egress"],
            "egress": [{"to": [{"namespaceSelector": {"matchLabels": {"team": "x"}}}]}],
        }
    }
    with pytest.raises(ValueError, match="not translated"):
        egress_rules([policy], "lab", {}, _pod_ips, "10.88.0.0/16")
