"""The apply engine's pure parts: order, ownership checks, diffs, policies, diagnostics."""

from __future__ import annotations

import pytest

from labfleet.kube.apply.diff import MASK, field_diff
from labfleet.kube.apply.inventory import inventory_manifest, parse_inventory
from labfleet.kube.apply.policies import create_only_update, keeps_user_data
from labfleet.kube.apply.preflight import references
from labfleet.kube.apply.refs import (
    HUB_NAMESPACE_LABEL,
    ManifestError,
    ObjectRef,
    Target,
    apply_order,
    delete_order,
    stamp,
    target_of,
)
from labfleet.kube.apply.report import field_line, rollout_line
from labfleet.kube.apply.results import RolloutState
from labfleet.kube.apply.rollout import pod_problems, workload_state

OURS = {"app.kubernetes.io/managed-by": "labfleet", "app.kubernetes.io/instance": "lab"}


def obj(
    kind: str, name: str, namespace: str | None = "lab", api: str = "v1", **body: object
) -> dict:
    meta: dict = {"name": name, "labels": dict(OURS)}
    if namespace:
        meta["namespace"] = namespace
    return {"apiVersion": api, "kind": kind, "metadata": meta, **body}


def test_apply_order_puts_what_others_need_first() -> None:
    manifests = [
        obj("Ingress", "web", api="networking.k8s.io/v1"),
        obj("Deployment", "hub", api="apps/v1"),
        obj("Secret", "s"),
        obj("Namespace", "lab", namespace=None),
        obj("ServiceAccount", "hub"),
        obj("Widget", "x", api="example.com/v1"),
    ]
    kinds = [m["kind"] for m in apply_order(manifests)]
    assert kinds == ["Namespace", "ServiceAccount", "Secret", "Deployment", "Ingress", "Widget"]
    refs = [ObjectRef.of(m) for m in manifests]
    assert [r.kind for r in delete_order(refs)][-1] == "Namespace"


def test_target_needs_labels_namespaces_and_one_instance() -> None:
    assert target_of([obj("ConfigMap", "a"), obj("Namespace", "lab", None)]) == Target("lab", "lab")
    unlabelled = obj("ConfigMap", "a")
    del unlabelled["metadata"]["labels"]["app.kubernetes.io/managed-by"]
    with pytest.raises(ManifestError, match="lacks the labels"):
        target_of([unlabelled])
    with pytest.raises(ManifestError, match=r"no metadata\.namespace"):
        target_of([obj("ConfigMap", "a", namespace=None)])
    other = obj("ConfigMap", "b")
    other["metadata"]["labels"]["app.kubernetes.io/instance"] = "other"
    with pytest.raises(ManifestError, match="several instances"):
        target_of([obj("ConfigMap", "a"), other])
    with pytest.raises(ManifestError, match="empty"):
        target_of([])


def test_stamp_copies_and_labels_with_the_hub_namespace() -> None:
    original = obj("ConfigMap", "a")
    stamped = stamp(original, Target("lab", "lab"))
    assert stamped["metadata"]["labels"][HUB_NAMESPACE_LABEL] == "lab"
    assert HUB_NAMESPACE_LABEL not in original["metadata"]["labels"]


def test_inventory_round_trip() -> None:
    target = Target("lab", "lab")
    refs = {
        ObjectRef("apps/v1", "Deployment", "lab", "hub"),
        ObjectRef("v1", "Namespace", "", "lab"),
    }
    assert parse_inventory(inventory_manifest(target, refs)) == refs
    assert parse_inventory(None) == set()


def test_field_diff_keys_lists_by_name_and_masks_secrets() -> None:
    live = obj(
        "Deployment",
        "hub",
        api="apps/v1",
        spec={
            "template": {
                "spec": {
                    "containers": [
                        {"name": "hub", "image": "a:1"},
                        {"name": "side", "image": "s:1"},
                    ]
                }
            }
        },
    )
    new = obj(
        "Deployment",
        "hub",
        api="apps/v1",
        spec={
            "template": {
                "spec": {
                    "containers": [
                        {"name": "side", "image": "s:1"},
                        {"name": "hub", "image": "a:2"},
                    ]
                }
            }
        },
    )
    live["metadata"]["resourceVersion"], live["status"] = "5", {"replicas": 1}
    changes = field_diff(live, new)
    assert [(c.path, c.before, c.after) for c in changes] == [
        ("spec.template.spec.containers[hub].image", "a:1", "a:2")
    ]
    assert field_line(changes[0]) == "      ~ spec.template.spec.containers[hub].image: a:1 -> a:2"
    secret = field_diff(
        obj("Secret", "s", data={"k": "b2xk"}), obj("Secret", "s", data={"k": "bmV3"})
    )
    assert [(c.before, c.after) for c in secret] == [(MASK, MASK)]


def test_create_only_secret_keeps_live_values() -> None:
    rendered = obj("Secret", "s", data={"a": "bmV3", "b": "bmV3"})
    assert create_only_update(rendered, None) is rendered
    assert create_only_update(rendered, obj("Secret", "s", data={"a": "b2xk", "b": "b2xk"})) is None
    merged = create_only_update(rendered, obj("Secret", "s", data={"a": "b2xk"}))
    assert merged is not None and merged["data"] == {"a": "b2xk", "b": "bmV3"}
    assert create_only_update(obj("ConfigMap", "c"), obj("ConfigMap", "c")) is None
    assert keeps_user_data(None, "PersistentVolumeClaim")
    assert not keeps_user_data(obj("ConfigMap", "c"), "ConfigMap")


def test_references_of_a_workload() -> None:
    spec = {
        "serviceAccountName": "hub",
        "imagePullSecrets": [{"name": "pull"}],
        "volumes": [
            {"name": "c", "configMap": {"name": "cfg"}},
            {"name": "o", "secret": {"secretName": "opt", "optional": True}},
            {"name": "d", "persistentVolumeClaim": {"claimName": "db"}},
        ],
        "containers": [
            {
                "name": "hub",
                "image": "x",
                "env": [
                    {"name": "URL", "valueFrom": {"secretKeyRef": {"name": "db-url", "key": "url"}}}
                ],
            }
        ],
    }
    deployment = obj("Deployment", "hub", api="apps/v1", spec={"template": {"spec": spec}})
    found = {(r.kind, r.name) for r in references(deployment)}
    assert found == {
        ("ServiceAccount", "hub"),
        ("Secret", "pull"),
        ("ConfigMap", "cfg"),
        ("PersistentVolumeClaim", "db"),
        ("Secret", "db-url"),
    }
    assert references(obj("ConfigMap", "x")) == set()


def test_rollout_state_and_pod_problems() -> None:
    ref = ObjectRef("apps/v1", "Deployment", "lab", "hub")
    live = obj("Deployment", "hub", api="apps/v1", spec={"replicas": 1})
    live["metadata"]["generation"] = 2
    live["status"] = {"observedGeneration": 1, "availableReplicas": 1, "updatedReplicas": 1}
    assert not workload_state(ref, live, 3.0).done  # the new generation is not observed yet
    live["status"]["observedGeneration"] = 2
    assert workload_state(ref, live, 3.0).done
    crashing = {
        "metadata": {"name": "hub-1"},
        "status": {
            "conditions": [{"type": "PodScheduled", "status": "False", "message": "0/3 nodes"}],
            "containerStatuses": [
                {"name": "hub", "state": {"terminated": {"exitCode": 2, "reason": "Error"}}},
                {"name": "init", "state": {"waiting": {"reason": "ContainerCreating"}}},
            ],
        },
    }
    assert pod_problems([crashing]) == [
        "pod hub-1 unschedulable: 0/3 nodes",
        "pod hub-1: container hub exited with 2 (Error)",
    ]
    state = RolloutState(ref, 0, 1, 12.4, False, "pod hub-1: ImagePullBackOff")
    assert (
        rollout_line(state)
        == "waiting for deployment/hub: 0/1 ready (12s) - pod hub-1: ImagePullBackOff"
    )
