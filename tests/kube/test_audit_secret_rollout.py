"""Audit: a changed Secret the hub reads rolls the hub at the next ``labfleet apply``.

Kubernetes restarts a Deployment's pods only when the pod template changes. Before the fix
a new OAuth client secret or database URL in the operator's Secret (or a rotated hub
Secret, which apply never overwrites) left the hub running with the old values. Now apply
reads every Secret a workload's pods reference, as it is in the cluster at that moment,
and puts a checksum of them in the pod template; plan shows the same change.
"""

from __future__ import annotations

import base64
from collections.abc import Iterator
from pathlib import Path

import pytest

from labfleet.config.load import parse_text
from labfleet.kube.apply import Cluster, apply, connect, plan
from labfleet.kube.apply.results import Action
from labfleet.kube.hub_secret import generate_hub_secrets
from labfleet.kube.render import render_objects
from labfleet.kube.secret_checksum import ANNOTATION
from tests.kube.double import KubeDouble, running_double
from tests.kube.double.kinds import BY_KIND

NS = "lab"
CONFIG = parse_text(
    f"""
name: lab
auth:
  kind: github
  github: {{client_id: abc, client_secret: "env:GITHUB_CLIENT_SECRET",
            allowed_organizations: [lab]}}
kubernetes:
  namespace: {NS}
  hub:
    env_from_secrets:
      GITHUB_CLIENT_SECRET: {{secret: github-oauth, key: client_secret}}
"""
)


@pytest.fixture
def fleet(tmp_path: Path) -> Iterator[tuple[KubeDouble, Cluster]]:
    with running_double() as double:
        yield double, Cluster(connect(double.write_kubeconfig(tmp_path / "kubeconfig")))


def put_secret(double: KubeDouble, name: str, value: str) -> None:
    """What an operator's ``kubectl apply`` of their own Secret does."""
    kind = BY_KIND["v1", "Secret"]
    body = {
        "metadata": {"name": name},
        "data": {"client_secret": base64.b64encode(value.encode()).decode()},
    }
    if double.get("v1", "Secret", name, NS) is None:
        double.store.create(kind, NS, body, "kubectl")
    else:
        live = double.get("v1", "Secret", name, NS)
        assert live is not None
        double.store.replace(kind, NS, name, {**live, "data": body["data"]}, "kubectl")


def hub_checksum(double: KubeDouble) -> str | None:
    hub = double.get("apps/v1", "Deployment", "lab-hub", NS)
    assert hub is not None
    annotations = hub["spec"]["template"]["metadata"].get("annotations") or {}
    return annotations.get(ANNOTATION)


def hub_change(changes: tuple, kind: str = "Deployment") -> Action:
    return next(c.action for c in changes if c.ref.kind == kind and c.ref.name == "lab-hub")


def test_a_changed_secret_rolls_the_hub(fleet: tuple[KubeDouble, Cluster]) -> None:
    double, cluster = fleet
    objects = render_objects(CONFIG, generate_hub_secrets())
    apply(cluster, objects, wait=False)  # makes the namespace; the OAuth Secret is missing
    put_secret(double, "github-oauth", "first")
    apply(cluster, objects, wait=False)
    first = hub_checksum(double)
    assert first

    again = apply(cluster, render_objects(CONFIG, generate_hub_secrets()), wait=False)
    assert hub_change(again.changes) is Action.UNCHANGED  # nothing changed: no rollout
    assert hub_checksum(double) == first

    put_secret(double, "github-oauth", "rotated")
    assert hub_change(plan(cluster, objects).changes) is Action.UPDATE
    rolled = apply(cluster, objects, wait=False)
    assert hub_change(rolled.changes) is Action.UPDATE
    assert hub_checksum(double) not in (None, first)


def test_a_rotated_hub_secret_rolls_the_hub_and_the_proxy(
    fleet: tuple[KubeDouble, Cluster],
) -> None:
    """The hub Secret is create-only (apply keeps its values); a rotation edits it in place."""
    double, cluster = fleet
    objects = render_objects(CONFIG, generate_hub_secrets())
    apply(cluster, objects, wait=False)
    before = {
        name: double.get("apps/v1", "Deployment", name, NS) for name in ("lab-hub", "lab-proxy")
    }
    live = double.get("v1", "Secret", "lab-hub-secret", NS)
    assert live is not None
    token = base64.b64encode(b"a-new-proxy-token").decode()
    live["data"]["proxy_token"] = token
    double.store.replace(BY_KIND["v1", "Secret"], NS, "lab-hub-secret", live, "labfleet-rotate")
    apply(cluster, render_objects(CONFIG, generate_hub_secrets()), wait=False)
    for name, old in before.items():
        new = double.get("apps/v1", "Deployment", name, NS)
        assert old is not None and new is not None
        old_sum = old["spec"]["template"]["metadata"]["annotations"].get(ANNOTATION)
        assert new["spec"]["template"]["metadata"]["annotations"][ANNOTATION] != old_sum, name
