"""The apply engine against the Kubernetes API double (no real cluster runs here).

Manifests come from labfleet's own renderer (``labfleet.kube.render``), so
these tests also prove that what we render is accepted by a strict API
server: schema-valid, in an order where every reference exists, and
reaching rollout.
"""

from __future__ import annotations

import base64
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from lightkube import Client
from lightkube.config.kubeconfig import KubeConfig
from lightkube.types import PatchType

from labfleet.config.load import load_config, parse_text
from labfleet.kube.apply import (
    Action,
    Cluster,
    ClusterError,
    ConflictError,
    ManifestError,
    apply,
    apply_summary,
    connect,
    destroy,
    event_line,
    plan,
    plan_text,
    status,
    status_text,
    target_of,
)
from labfleet.kube.apply.inventory import inventory_ref, parse_inventory
from labfleet.kube.apply.refs import ObjectRef
from labfleet.kube.apply.resources import resource_class
from labfleet.kube.apply.results import Event, Waiting
from labfleet.kube.hub import pod_security_labels
from labfleet.kube.hub_secret import generate_hub_secrets
from labfleet.kube.render import render_objects
from tests.kube.double import KubeDouble, running_double

NS = "lab"
BASE = f"""
name: lab
auth:
  kind: dummy
  dummy:
    password: change-me-please
kubernetes:
  namespace: {NS}
"""
CHANGED = (
    BASE
    + """
  hub:
    image: ghcr.io/labfleet/hub:0.2.0
  network:
    policies: false
"""
)


def render(text: str = BASE) -> list[dict[str, Any]]:
    """Render afresh: new random hub secrets every time, as a new CLI run would."""
    return render_objects(parse_text(text), generate_hub_secrets())


@pytest.fixture
def double() -> Iterator[KubeDouble]:
    with running_double() as running:
        yield running


@pytest.fixture
def kubeconfig(double: KubeDouble, tmp_path: Path) -> Path:
    return double.write_kubeconfig(tmp_path / "kubeconfig")


@pytest.fixture
def cluster(kubeconfig: Path) -> Cluster:
    return Cluster(connect(kubeconfig))


def other_manager(kubeconfig: Path, name: str) -> Client:
    """A second client, like someone running kubectl against the same cluster."""
    return Client(KubeConfig.from_file(str(kubeconfig)).get(), field_manager=name)


def writes(double: KubeDouble) -> int:
    return len(double.store.writes)


def test_apply_reapply_change_prune_destroy(double: KubeDouble, cluster: Cluster) -> None:
    # A plain cluster (kind, k3d): no GKE or cert-manager CRDs, so the engine's
    # label sweep meets the apiserver's plain-text 404 for those API groups.
    double.server.unserved_groups = {"networking.gke.io", "cloud.google.com", "cert-manager.io"}
    first = render()
    before = plan(cluster, first)
    assert {c.action for c in before.changes} == {Action.CREATE}
    assert len(before.changes) == len(first) + 1  # + the inventory

    lines: list[str] = []

    def progress(event: Event) -> None:
        lines.append(event_line(event) or "")
        if isinstance(event, Waiting) and not event.state.done:
            double.controller.pods_start = True  # pods start once we have seen them wait

    double.controller.pods_start = False
    result = apply(cluster, first, poll=0.1, timeout=60, on_event=progress)
    assert len(result.of(Action.CREATE)) == len(first) + 1
    assert result.rollout is not None and result.rollout.ready
    assert any(line.startswith("waiting for deployment/lab-hub: 0/1 ready (") for line in lines)
    assert "deployment/lab-hub: 1/1 ready" in "\n".join(lines)
    assert (
        result.endpoint is not None
        and "port-forward service/lab-proxy-public" in result.endpoint.hint
    )
    assert "reach the hub at" in apply_summary(result)

    hub = double.get("apps/v1", "Deployment", "lab-hub", NS)
    assert hub is not None
    managers = {(m["manager"], m["operation"]) for m in hub["metadata"]["managedFields"]}
    assert ("labfleet", "Apply") in managers
    inventory = parse_inventory(double.get("v1", "ConfigMap", "lab-inventory", NS))
    assert ObjectRef("apps/v1", "Deployment", NS, "lab-hub") in inventory
    secret = double.get("v1", "Secret", "lab-hub-secret", NS)
    assert secret is not None
    generated = dict(secret["data"])

    # Re-apply a fresh render (new random secrets): nothing changes, nothing is written.
    again = render()
    assert not plan(cluster, again).has_changes
    count = writes(double)
    second = apply(cluster, again, poll=0.1, timeout=60)
    assert {c.action for c in second.changes} == {Action.UNCHANGED}
    assert not second.changed
    assert writes(double) == count
    assert double.get("v1", "Secret", "lab-hub-secret", NS)["data"] == generated  # type: ignore[index]

    # A config change: new hub image (update) and no NetworkPolicies (prune).
    changed = render(CHANGED)
    proposal = plan(cluster, changed)
    updates = {str(c.ref): c for c in proposal.of(Action.UPDATE)}
    assert "deployment/lab-hub -n lab" in updates
    image_changes = [
        f for f in updates["deployment/lab-hub -n lab"].fields if f.path.endswith(".image")
    ]
    assert image_changes and image_changes[0].after == "ghcr.io/labfleet/hub:0.2.0"
    assert image_changes[0].before == "ghcr.io/labfleet/hub:0.1.0"
    pruned = {c.ref.name for c in proposal.of(Action.PRUNE)}
    assert {"lab-hub", "lab-proxy", "lab-users"} <= pruned
    text = plan_text(proposal)
    assert "0.1.0 -> ghcr.io/labfleet/hub:0.2.0" in text and "to prune" in text
    assert double.list("networking.k8s.io/v1", "NetworkPolicy", NS)  # plan changed nothing

    third = apply(cluster, changed, poll=0.1, timeout=60)
    assert "deployment/lab-hub -n lab" in {str(c.ref) for c in third.of(Action.UPDATE)}
    assert {r.kind for r in third.pruned} == {"NetworkPolicy"}
    assert double.list("networking.k8s.io/v1", "NetworkPolicy", NS) == []
    live_hub = double.get("apps/v1", "Deployment", "lab-hub", NS)
    assert live_hub is not None and live_hub["metadata"]["generation"] == 2
    assert live_hub["status"]["observedGeneration"] == 2  # waited for the new rollout
    assert not parse_inventory(double.get("v1", "ConfigMap", "lab-inventory", NS)) & {
        ObjectRef("networking.k8s.io/v1", "NetworkPolicy", NS, "lab-hub")
    }
    assert not plan(cluster, render(CHANGED)).has_changes

    # Status, then destroy: everything goes but users' data.
    report = status(cluster, third.target)
    assert report.healthy and {w.component for w in report.workloads} == {"hub", "proxy"}
    assert "lab-hub: 1/1 ready" in status_text(report)
    gone = destroy(cluster, third.target)
    assert double.list("apps/v1", "Deployment", NS) == []
    assert double.get("v1", "Secret", "lab-hub-secret", NS) is None
    assert double.get("v1", "ConfigMap", "lab-inventory", NS) is None
    assert double.get("v1", "PersistentVolumeClaim", "lab-hub-db", NS) is not None
    assert double.get("v1", "Namespace", NS) is not None
    assert {k.ref.kind for k in gone.kept} == {"PersistentVolumeClaim", "Namespace"}
    assert not status(cluster, third.target).installed

    final = destroy(cluster, third.target, delete_user_data=True)
    assert {r.kind for r in final.deleted} == {"PersistentVolumeClaim", "Namespace"}
    assert double.get("v1", "Namespace", NS) is None


def test_create_only_secret_keeps_values_and_adds_missing_keys(
    double: KubeDouble, cluster: Cluster, kubeconfig: Path
) -> None:
    apply(cluster, render(), wait=False)
    live = double.get("v1", "Secret", "lab-hub-secret", NS)
    assert live is not None
    kept = live["data"]["cookie_secret"]
    # Someone (or an older labfleet) left the Secret without one key.
    other_manager(kubeconfig, "kubectl-edit").patch(
        resource_class("v1", "Secret"),
        "lab-hub-secret",
        {"data": {"crypt_key": None}},
        namespace=NS,
        patch_type=PatchType.MERGE,
    )
    proposal = plan(cluster, render())
    change = next(c for c in proposal.changes if c.ref.name == "lab-hub-secret")
    assert change.action is Action.UPDATE
    assert [f.path for f in change.fields] == ["data.crypt_key"]
    assert "(sensitive value)" in plan_text(proposal)
    assert kept not in plan_text(proposal)
    apply(cluster, render(), wait=False)
    after = double.get("v1", "Secret", "lab-hub-secret", NS)
    assert after is not None
    assert after["data"]["cookie_secret"] == kept
    assert len(base64.b64decode(after["data"]["crypt_key"])) == 64  # 32 random bytes, hex


def test_conflict_with_another_manager_stops_unless_forced(
    double: KubeDouble, cluster: Cluster, kubeconfig: Path
) -> None:
    apply(cluster, render(), wait=False)
    hub = double.get("apps/v1", "Deployment", "lab-hub", NS)
    assert hub is not None
    # Another tool server-side-applies a field labfleet owns, forcing it.
    other_manager(kubeconfig, "ops-script").patch(
        resource_class("apps/v1", "Deployment"),
        "lab-hub",
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": "lab-hub"},
            "spec": {"replicas": 3},
        },
        namespace=NS,
        patch_type=PatchType.APPLY,
        force=True,
    )
    proposal = plan(cluster, render())
    conflicts = proposal.of(Action.CONFLICT)
    assert [str(c.ref) for c in conflicts] == ["deployment/lab-hub -n lab"]
    assert "ops-script" in conflicts[0].reason

    with pytest.raises(ConflictError) as caught:
        apply(cluster, render(), wait=False)
    message = str(caught.value)
    assert "deployment/lab-hub" in message and ".spec.replicas" in message
    assert "--force-conflicts" in message
    assert double.get("apps/v1", "Deployment", "lab-hub", NS)["spec"]["replicas"] == 3  # type: ignore[index]

    apply(cluster, render(), wait=False, force_conflicts=True)
    taken = double.get("apps/v1", "Deployment", "lab-hub", NS)
    assert taken is not None and taken["spec"]["replicas"] == 1
    assert not plan(cluster, render()).has_changes


def test_rollout_that_never_finishes_reports_progress_and_times_out(
    double: KubeDouble, cluster: Cluster
) -> None:
    double.controller.pods_start = False
    lines: list[str] = []
    result = apply(
        cluster,
        render(),
        poll=0.1,
        timeout=1.0,
        on_event=lambda e: lines.append(event_line(e) or ""),
    )
    assert result.rollout is not None and result.rollout.timed_out and not result.rollout.ready
    assert "waiting for deployment/lab-hub: 0/1 ready" in "\n".join(lines)
    assert "rollout did not finish in time" in apply_summary(result)


def test_prune_only_touches_what_we_own(
    double: KubeDouble, cluster: Cluster, kubeconfig: Path
) -> None:
    apply(cluster, render(), wait=False)
    foreign = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "someone-elses", "namespace": NS},
        "data": {"a": "b"},
    }
    other_manager(kubeconfig, "kubectl").create(
        resource_class("v1", "ConfigMap").from_dict(foreign)
    )
    # An object labelled ours but for another instance is not ours either.
    other_instance = {
        **foreign,
        "metadata": {
            "name": "other-instance",
            "namespace": NS,
            "labels": {
                "app.kubernetes.io/managed-by": "labfleet",
                "app.kubernetes.io/instance": "other",
            },
        },
    }
    other_manager(kubeconfig, "kubectl").create(
        resource_class("v1", "ConfigMap").from_dict(other_instance)
    )
    result = apply(cluster, render(CHANGED), wait=False)
    assert {r.kind for r in result.pruned} == {"NetworkPolicy"}
    assert double.get("v1", "ConfigMap", "someone-elses", NS) is not None
    assert double.get("v1", "ConfigMap", "other-instance", NS) is not None
    assert double.get("v1", "ServiceAccount", "default", NS) is not None
    destroy(cluster, result.target)
    assert double.get("v1", "ConfigMap", "someone-elses", NS) is not None


def test_object_dropped_from_render_but_relabelled_is_not_pruned(
    double: KubeDouble, cluster: Cluster, kubeconfig: Path
) -> None:
    apply(cluster, render(), wait=False)
    # Someone takes the users' NetworkPolicy over by removing our labels.
    other_manager(kubeconfig, "kubectl-label").patch(
        resource_class("networking.k8s.io/v1", "NetworkPolicy"),
        "lab-users",
        {"metadata": {"labels": {"app.kubernetes.io/managed-by": None}}},
        namespace=NS,
        patch_type=PatchType.MERGE,
    )
    assert ObjectRef("networking.k8s.io/v1", "NetworkPolicy", NS, "lab-users") in parse_inventory(
        double.get("v1", "ConfigMap", "lab-inventory", NS)
    )
    result = apply(cluster, render(CHANGED), wait=False)
    assert {r.name for r in result.pruned} == {"lab-hub", "lab-proxy"}
    assert double.get("networking.k8s.io/v1", "NetworkPolicy", "lab-users", NS) is not None


def test_server_rejection_names_the_object(double: KubeDouble, cluster: Cluster) -> None:
    manifests = render()
    hub = next(
        m for m in manifests if m["kind"] == "Deployment" and m["metadata"]["name"] == "lab-hub"
    )
    hub["spec"]["template"]["spec"]["containers"][0]["imagePullPolicy"] = "Sometimes"
    hub["spec"]["template"]["spec"]["containers"][0]["bogusField"] = True
    with pytest.raises(ClusterError) as caught:
        apply(cluster, manifests, wait=False)
    assert caught.value.code == 422
    assert "deployment/lab-hub" in str(caught.value)
    assert double.get("apps/v1", "Deployment", "lab-hub", NS) is None
    # The failed run did not record an inventory, and objects applied before
    # the failure are still found (by label) and pruned by the next run.
    assert double.get("v1", "ConfigMap", "lab-inventory", NS) is None
    reduced = [m for m in render() if m["kind"] != "NetworkPolicy"]
    result = apply(cluster, reduced, wait=False)
    assert {r.kind for r in result.pruned} == {"NetworkPolicy"}


def test_manifests_without_our_labels_are_refused_before_any_request(
    double: KubeDouble, cluster: Cluster
) -> None:
    manifests = render()
    del manifests[1]["metadata"]["labels"]["app.kubernetes.io/instance"]
    before = len(double.server.requests)
    with pytest.raises(ManifestError, match="lacks the labels"):
        apply(cluster, manifests)
    with pytest.raises(ManifestError, match="rendered twice"):
        plan(cluster, [*render(), render()[1]])
    assert len(double.server.requests) == before


def test_status_before_install(cluster: Cluster) -> None:
    from labfleet.kube.apply import target_of

    target = target_of(render())
    report = status(cluster, target)
    assert not report.installed
    assert "not installed" in status_text(report)
    assert inventory_ref(target).name == "lab-inventory"


EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def render_example(name: str) -> list[dict[str, Any]]:
    return render_objects(load_config(EXAMPLES / f"{name}.yaml"), generate_hub_secrets())


def test_missing_operator_secrets_are_warned_and_the_rollout_waits_for_them(
    double: KubeDouble, cluster: Cluster, kubeconfig: Path
) -> None:
    manifests = render_example("google-hardened")  # PostgreSQL URL, OAuth secret, pull secret
    # cluster_scoped: false: the platform team made the namespace beforehand.
    operator = other_manager(kubeconfig, "kubectl")
    namespace = {"metadata": {"name": "datalab", "labels": pod_security_labels()}}
    operator.create(resource_class("v1", "Namespace").from_dict(namespace))
    proposal = plan(cluster, manifests)
    needed = {"secret/datalab-db -n datalab", "secret/google-oauth -n datalab"}
    needed.add("secret/mirror-pull -n datalab")
    assert {w.split(" is needed")[0] for w in proposal.warnings} == needed
    assert "warning: secret/datalab-db -n datalab is needed by deployment/datalab-hub" in plan_text(
        proposal
    )

    lines: list[str] = []
    first = apply(
        cluster,
        manifests,
        poll=0.1,
        timeout=1,
        on_event=lambda e: lines.append(event_line(e) or ""),
    )
    assert first.rollout is not None and first.rollout.timed_out
    hub = next(s for s in first.rollout.states if s.ref.name == "datalab-hub")
    assert not hub.done and "secret/datalab-db" in hub.message
    assert any(line.startswith("warning: secret/datalab-db") for line in lines)

    for name, key in (("datalab-db", "url"), ("google-oauth", "client_secret")):
        secret = {"metadata": {"name": name, "namespace": "datalab"}, "stringData": {key: "x"}}
        operator.create(resource_class("v1", "Secret").from_dict(secret))
    pull = {
        "metadata": {"name": "mirror-pull", "namespace": "datalab"},
        "type": "kubernetes.io/dockerconfigjson",
        "data": {".dockerconfigjson": base64.b64encode(b'{"auths": {}}').decode()},
    }
    operator.create(resource_class("v1", "Secret").from_dict(pull))
    second = apply(cluster, manifests, poll=0.1, timeout=60)
    assert second.warnings == ()
    assert second.rollout is not None and second.rollout.ready


def test_custom_resources_the_cluster_lacks_are_explained(
    double: KubeDouble, cluster: Cluster
) -> None:
    double.server.unserved_groups = {"networking.gke.io", "cloud.google.com"}
    with pytest.raises(ClusterError) as caught:
        apply(cluster, render_example("gke-iap"), wait=False)
    assert caught.value.code == 404
    assert "does not serve" in str(caught.value) and "only on GKE" in str(caught.value)


def test_missing_namespace_is_explained(double: KubeDouble, cluster: Cluster) -> None:
    manifests = render(BASE + "  create_namespace: false\n")
    assert all(m["kind"] != "Namespace" for m in manifests)
    with pytest.raises(ClusterError, match="namespace lab does not exist"):
        apply(cluster, manifests, wait=False)


def test_rollout_reports_why_pods_do_not_start(double: KubeDouble, cluster: Cluster) -> None:
    manifests = render(CHANGED)
    double.controller.unpullable_images = {"ghcr.io/labfleet/hub:0.2.0"}
    events: list[Event] = []
    result = apply(cluster, manifests, poll=0.1, timeout=1, on_event=events.append)
    assert result.rollout is not None and result.rollout.timed_out
    summary = apply_summary(result)
    assert "waiting for deployment/lab-hub: 0/1 ready" in summary
    assert 'ImagePullBackOff: Back-off pulling image "ghcr.io/labfleet/hub:0.2.0"' in summary
    assert not any(s.done for s in result.rollout.states)  # the proxy runs the hub image too
    report = status(cluster, result.target)
    assert not report.healthy
    assert "ImagePullBackOff" in status_text(report)


def test_same_named_instances_in_two_namespaces_leave_each_other_alone(
    double: KubeDouble, cluster: Cluster
) -> None:
    per_user = BASE + "  users:\n    namespaces: per-user\n"
    first = render(per_user)
    second = render(per_user.replace(f"namespace: {NS}", "namespace: lab2"))
    roles = [m["metadata"]["name"] for m in first + second if m["kind"] == "ClusterRole"]
    assert len(set(roles)) == 2  # one per instance, both labelled instance=lab

    apply(cluster, first, wait=False)
    result = apply(cluster, second, wait=False)
    assert result.pruned == ()
    assert all(double.get("rbac.authorization.k8s.io/v1", "ClusterRole", r) for r in roles)

    destroy(cluster, result.target, delete_user_data=True)
    assert double.get("v1", "Namespace", "lab2") is None
    assert double.get("rbac.authorization.k8s.io/v1", "ClusterRole", roles[0]) is not None
    assert double.get("apps/v1", "Deployment", "lab-hub", NS) is not None
    assert not plan(cluster, render(per_user)).has_changes


def operator_secrets(manifests: list[dict[str, Any]]) -> dict[str, dict[str, str]]:
    """Secrets an operator creates by hand for a config: name -> keys the pods read."""
    found: dict[str, dict[str, str]] = {}

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            ref = node.get("secretKeyRef")
            if isinstance(ref, dict):
                found.setdefault(ref["name"], {})[ref["key"]] = "c2V0LWJ5LXRoZS1vcGVyYXRvcg=="
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(manifests)
    return found


@pytest.mark.parametrize(
    "example", ["minimal", "gke-iap", "github-nfs", "google-hardened", "kubeflow-form"]
)
def test_every_example_applies_rolls_out_and_is_destroyed(
    example: str, double: KubeDouble, cluster: Cluster, kubeconfig: Path
) -> None:
    manifests = render_example(example)
    target = target_of(manifests)
    operator = other_manager(kubeconfig, "kubectl")
    warnings = plan(cluster, manifests).warnings
    if warnings and double.get("v1", "Namespace", target.namespace) is None:
        namespace = {"metadata": {"name": target.namespace}}
        operator.create(resource_class("v1", "Namespace").from_dict(namespace))
    for warning in warnings:
        missing = warning.split(" is needed")[0]  # "secret/NAME -n NAMESPACE"
        name = missing.split("/")[1].split(" ")[0]
        pull = {".dockerconfigjson": base64.b64encode(b'{"auths": {}}').decode()}
        data = operator_secrets(manifests).get(name) or pull
        kind = "kubernetes.io/dockerconfigjson" if data is pull else "Opaque"
        meta = {"name": name, "namespace": target.namespace}
        secret = {"metadata": meta, "type": kind, "data": data}
        operator.create(resource_class("v1", "Secret").from_dict(secret))

    result = apply(cluster, manifests, poll=0.1, timeout=60)
    assert result.warnings == ()
    assert result.rollout is not None and result.rollout.ready, apply_summary(result)
    assert result.endpoint is not None and result.endpoint.hint
    assert not plan(cluster, render_example(example)).has_changes

    destroy(cluster, target, delete_user_data=True)
    left = [
        o["metadata"]["name"]
        for api, kind in (("apps/v1", "Deployment"), ("v1", "Secret"), ("v1", "ConfigMap"))
        for o in double.list(
            api, kind, target.namespace, **{"app.kubernetes.io/instance": target.instance}
        )
    ]
    assert left == []


def test_rbac_limits_on_kinds_we_never_render_do_not_block_apply(
    double: KubeDouble, cluster: Cluster
) -> None:
    double.server.forbidden_resources = {"priorityclasses", "clusterroles"}
    result = apply(cluster, render(), wait=False)  # renders neither
    assert len(result.of(Action.CREATE)) == len(render()) + 1
    destroy(cluster, result.target)
    double.server.forbidden_resources = {"networkpolicies"}  # rendered: must fail loudly
    with pytest.raises(ClusterError, match="forbidden"):
        apply(cluster, render(), wait=False)


def test_pods_that_break_pod_security_are_reported_by_the_rollout(
    double: KubeDouble, cluster: Cluster
) -> None:
    manifests = render()
    hub = next(
        m for m in manifests if m["kind"] == "Deployment" and m["metadata"]["name"] == "lab-hub"
    )
    hub["spec"]["template"]["spec"]["containers"][0]["securityContext"]["privileged"] = True
    result = apply(cluster, manifests, poll=0.1, timeout=1)
    assert result.rollout is not None and result.rollout.timed_out
    state = next(s for s in result.rollout.states if s.ref.name == "lab-hub")
    assert 'violates PodSecurity "restricted:latest": privileged' in state.message
