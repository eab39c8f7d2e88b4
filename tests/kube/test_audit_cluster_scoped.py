"""Audit: ``kubernetes.cluster_scoped: false`` for clusters where the team owns one namespace.

Compliant Kubernetes (and most managed platforms run by a central team) give application
developers rights in their namespace only: no Namespace, ClusterRole(Binding),
ClusterIssuer, PriorityClass or PersistentVolume. Before the fix,
``examples/google-hardened.yaml`` (the setup that replaces that guide's JupyterHub) rendered
all of them. Interface contract: that example renders no cluster-scoped object; checked
against the API double's kind table (what a real API server says is namespaced).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from labfleet.config.load import ConfigError, parse_text
from labfleet.kube.apply import Cluster, apply, connect, destroy, status
from labfleet.kube.render import render_objects
from tests.kube.double import running_double
from tests.kube.double.kinds import BY_KIND
from tests.kube.test_render_helpers import FIXED_SECRETS, load_example

BASE = "kubernetes:\n  namespace: team\n  cluster_scoped: false\n"


def cluster_scoped_ids(objects: list[dict]) -> list[str]:
    out = []
    for obj in objects:
        kind = BY_KIND[obj["apiVersion"], obj["kind"]]
        if not kind.namespaced:
            out.append(f"{obj['kind']}/{obj['metadata']['name']}")
    return out


def test_google_hardened_renders_no_cluster_scoped_object() -> None:
    config = load_example("google-hardened")
    assert config.kubernetes.cluster_scoped is False
    objects = render_objects(config, FIXED_SECRETS)
    assert cluster_scoped_ids(objects) == []
    assert {o["metadata"]["namespace"] for o in objects} == {config.kubernetes.namespace}
    assert "Role" in {o["kind"] for o in objects}  # the hub's rights stay in its namespace


def test_the_default_still_renders_its_namespace() -> None:
    objects = render_objects(parse_text("kubernetes: {namespace: team}"), FIXED_SECRETS)
    assert cluster_scoped_ids(objects) == ["Namespace/team"]
    quiet = render_objects(parse_text(BASE), FIXED_SECRETS)
    assert cluster_scoped_ids(quiet) == []


@pytest.mark.parametrize(
    ("extra", "needs"),
    [
        ("  create_namespace: true\n", "Namespace"),
        ("  users: {namespaces: per-user}\n", "ClusterRole"),
        (
            "  access: {kind: ingress, host: lab.example.org, "
            "ingress: {acme_email: ops@example.org}}\n",
            "ClusterIssuer",
        ),
        ("  placeholders: {replicas: 2}\n", "PriorityClass"),
        ("  storage: {kind: nfs, server: 10.0.0.2, path: /exports}\n", "PersistentVolume"),
        (
            "  profiles:\n    cpu: {storage: {kind: nfs, server: 10.0.0.2, path: /x}}\n",
            "PersistentVolume",
        ),
    ],
    ids=["namespace", "per-user", "cluster-issuer", "placeholders", "nfs", "profile-nfs"],
)
def test_options_that_need_cluster_scoped_objects_are_refused(extra: str, needs: str) -> None:
    profiles = "profiles:\n  - {slug: cpu, display_name: CPU, default: true}\n"
    with pytest.raises(ConfigError, match=rf"cluster_scoped: false.*{needs}"):
        parse_text(profiles + BASE + extra)


def test_apply_status_and_destroy_work_with_a_namespace_owners_rights(tmp_path: Path) -> None:
    """On the API double with a Role-in-one-namespace's rights (403 for anything
    cluster-wide or elsewhere): apply, status and destroy of the example stay inside it."""
    config = load_example("google-hardened")
    ns = config.kubernetes.namespace
    with running_double() as double:
        store = double.store
        store.create(BY_KIND["v1", "Namespace"], "", {"metadata": {"name": ns}}, "platform-team")
        double.server.namespace_only = ns
        cluster = Cluster(connect(double.write_kubeconfig(tmp_path / "kubeconfig")))
        applied = apply(cluster, render_objects(config, FIXED_SECRETS), wait=False)
        assert applied.changes
        report = status(cluster, applied.target)
        assert report.user_pods == ()
        destroy(cluster, applied.target)
        left = [o["kind"] for o in double.list("apps/v1", "Deployment", ns)]
        assert left == []
