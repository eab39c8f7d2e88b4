"""The Kubernetes API double itself: the protocol behaviour the apply engine relies on.

Raw HTTP (httpx), not lightkube, so these pin down the wire protocol: status
codes and ``Status`` bodies, resourceVersion, watch streams, server-side
apply field ownership and schema validation.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.kube.double import KubeDouble, running_double

APPLY = "application/apply-patch+yaml"
CM = "/api/v1/namespaces/default/configmaps"
DEPLOYMENTS = "/apis/apps/v1/namespaces/default/deployments"


@pytest.fixture(scope="module")
def double() -> Iterator[KubeDouble]:
    with running_double() as running:
        yield running


@pytest.fixture
def http(double: KubeDouble) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=double.url, timeout=10) as client:
        yield client


def configmap(name: str, **data: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}, "data": data}


def apply(
    http: httpx.Client, path: str, body: dict[str, Any], manager: str, force: bool = False
) -> httpx.Response:
    params = {"fieldManager": manager, **({"force": "true"} if force else {})}
    return http.patch(
        f"{path}/{body['metadata']['name']}",
        content=json.dumps(body),
        params=params,
        headers={"Content-Type": APPLY},
    )


def deployment(name: str, app: str, selector: str | None = None) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name},
        "spec": {
            "selector": {"matchLabels": {"app": selector or app}},
            "template": {
                "metadata": {"labels": {"app": app}},
                "spec": {"containers": [{"name": "main", "image": "example/app:1"}]},
            },
        },
    }


def test_discovery_endpoints(http: httpx.Client) -> None:
    assert http.get("/version").json()["major"] == "1"
    assert "v1" in http.get("/api").json()["versions"]
    groups = {g["name"] for g in http.get("/apis").json()["groups"]}
    assert {"apps", "rbac.authorization.k8s.io", "networking.k8s.io"} <= groups
    resources = {r["name"]: r for r in http.get("/apis/apps/v1").json()["resources"]}
    assert resources["deployments"]["namespaced"] is True
    assert http.get("/apis/nosuch.example/v1/things").status_code == 404


def test_create_get_conflicts_and_not_found(http: httpx.Client) -> None:
    created = http.post(CM, json=configmap("crud", a="1"))
    assert created.status_code == 201
    assert created.headers["Content-Type"] == "application/json"
    rv = int(created.json()["metadata"]["resourceVersion"])

    again = http.post(CM, json=configmap("crud", a="1"))
    assert again.status_code == 409
    assert again.json()["reason"] == "AlreadyExists"
    assert again.json()["kind"] == "Status"

    missing = http.get(f"{CM}/nope")
    assert missing.status_code == 404
    assert missing.json()["message"] == 'configmaps "nope" not found'
    assert http.delete(f"{CM}/nope").status_code == 404

    current = http.get(f"{CM}/crud").json()
    current["data"]["a"] = "2"
    replaced = http.put(f"{CM}/crud", json=current)
    assert replaced.status_code == 200
    assert int(replaced.json()["metadata"]["resourceVersion"]) > rv

    stale = dict(current, metadata=dict(current["metadata"], resourceVersion=str(rv)))
    conflict = http.put(f"{CM}/crud", json=stale)
    assert conflict.status_code == 409
    assert conflict.json()["reason"] == "Conflict"
    assert "the object has been modified" in conflict.json()["message"]

    orphan = http.post("/api/v1/namespaces/nowhere/configmaps", json=configmap("x"))
    assert orphan.status_code == 404
    assert orphan.json()["message"] == 'namespaces "nowhere" not found'
    assert http.delete(f"{CM}/crud").status_code == 200
    assert http.get(f"{CM}/crud").status_code == 404


def test_invalid_objects_are_rejected_with_422(http: httpx.Client) -> None:
    unknown = configmap("bad")
    unknown["spec"] = {"x": 1}
    answer = http.post(CM, json=unknown)
    assert answer.status_code == 422
    assert answer.json()["reason"] == "Invalid"

    label = configmap("bad-label")
    label["metadata"]["labels"] = {"user": "alice@example.com"}
    assert http.post(CM, json=label).status_code == 422

    assert http.post(CM, json=configmap("Upper_Case")).status_code == 422
    mismatch = http.post(DEPLOYMENTS, json=deployment("sel", "web", selector="other"))
    assert mismatch.status_code == 422
    assert "selector does not match template labels" in mismatch.json()["message"]

    assert http.post(DEPLOYMENTS, json=deployment("immutable", "web")).status_code == 201
    changed = apply(http, DEPLOYMENTS, deployment("immutable", "api"), "someone", force=True)
    assert changed.status_code == 422
    assert "spec.selector" in changed.json()["message"]


def test_server_side_apply_field_ownership(http: httpx.Client, double: KubeDouble) -> None:
    first = apply(http, CM, configmap("ssa", a="1", b="2"), "labfleet")
    assert first.status_code in (200, 201)
    managed = first.json()["metadata"]["managedFields"]
    assert [(m["manager"], m["operation"]) for m in managed] == [("labfleet", "Apply")]
    assert managed[0]["fieldsV1"] == {"f:data": {"f:a": {}, "f:b": {}}}

    # Re-applying the same configuration is a no-op: no new resourceVersion.
    rv = first.json()["metadata"]["resourceVersion"]
    same = apply(http, CM, configmap("ssa", a="1", b="2"), "labfleet")
    assert same.json()["metadata"]["resourceVersion"] == rv

    # A field no longer applied is removed; another manager's field survives.
    assert apply(http, CM, configmap("ssa", c="3"), "other").status_code == 200
    dropped = apply(http, CM, configmap("ssa", a="1"), "labfleet").json()
    assert dropped["data"] == {"a": "1", "c": "3"}

    # Changing a field someone else owns conflicts, unless forced.
    conflict = apply(http, CM, configmap("ssa", a="9", c="3"), "other")
    assert conflict.status_code == 409
    body = conflict.json()
    assert body["reason"] == "Conflict"
    assert 'conflict with "labfleet"' in body["message"]
    assert body["details"]["causes"][0]["field"] == ".data.a"
    forced = apply(http, CM, configmap("ssa", a="9", c="3"), "other", force=True).json()
    assert forced["data"]["a"] == "9"
    # labfleet lost .data.a, so dropping it from labfleet's config keeps it.
    after = apply(http, CM, configmap("ssa"), "labfleet").json()
    assert after["data"] == {"a": "9", "c": "3"}

    missing_manager = http.patch(
        f"{CM}/ssa", content=json.dumps(configmap("ssa")), headers={"Content-Type": APPLY}
    )
    assert missing_manager.status_code == 422


def test_merge_and_strategic_merge_patches(http: httpx.Client) -> None:
    assert http.post(DEPLOYMENTS, json=deployment("patched", "p")).status_code == 201
    path = f"{DEPLOYMENTS}/patched"
    sidecar = {"spec": {"template": {"spec": {"containers": [{"name": "side", "image": "s:1"}]}}}}
    strategic = http.patch(
        path,
        content=json.dumps(sidecar),
        headers={"Content-Type": "application/strategic-merge-patch+json"},
    )
    assert strategic.status_code == 200
    names = [c["name"] for c in strategic.json()["spec"]["template"]["spec"]["containers"]]
    assert names == ["main", "side"]

    merged = http.patch(
        path,
        content=json.dumps(sidecar),
        headers={"Content-Type": "application/merge-patch+json"},
    )
    names = [c["name"] for c in merged.json()["spec"]["template"]["spec"]["containers"]]
    assert names == ["side"]  # a merge patch replaces lists
    manager = [m["manager"] for m in merged.json()["metadata"]["managedFields"]]
    assert "python-httpx" in manager
    unsupported = http.patch(path, content="[]", headers={"Content-Type": "text/plain"})
    assert unsupported.status_code == 415


def test_watch_streams_events_after_a_resource_version(
    http: httpx.Client, double: KubeDouble
) -> None:
    listed = http.get(CM, params={"labelSelector": "watched=yes"}).json()
    since = listed["metadata"]["resourceVersion"]
    events: list[dict[str, Any]] = []
    ready = threading.Event()

    def watch() -> None:
        params = {
            "watch": "1",
            "resourceVersion": since,
            "labelSelector": "watched=yes",
            "timeoutSeconds": "5",
        }
        with httpx.stream("GET", f"{double.url}{CM}", params=params, timeout=10) as stream:
            ready.set()
            for line in stream.iter_lines():
                events.append(json.loads(line))
                if len(events) == 3:
                    return

    thread = threading.Thread(target=watch)
    thread.start()
    ready.wait(5)
    watched = configmap("watched", v="1")
    watched["metadata"]["labels"] = {"watched": "yes"}
    http.post(CM, json=configmap("unwatched"))
    http.post(CM, json=watched)
    http.patch(
        f"{CM}/watched",
        content=json.dumps({"data": {"v": "2"}}),
        headers={"Content-Type": "application/merge-patch+json"},
    )
    http.delete(f"{CM}/watched")
    thread.join(10)
    assert [e["type"] for e in events] == ["ADDED", "MODIFIED", "DELETED"]
    assert {e["object"]["metadata"]["name"] for e in events} == {"watched"}
    versions = [int(e["object"]["metadata"]["resourceVersion"]) for e in events]
    assert versions == sorted(versions) and versions[0] > int(since)
    assert events[1]["object"]["data"] == {"v": "2"}


def test_label_and_field_selectors(http: httpx.Client) -> None:
    for name, tier in (("sel-a", "web"), ("sel-b", "db"), ("sel-c", "web")):
        body = configmap(name)
        body["metadata"]["labels"] = {"tier": tier, "group": "sel"}
        http.post(CM, json=body)

    def names(**params: str) -> list[str]:
        items = http.get(CM, params=params).json()["items"]
        return sorted(i["metadata"]["name"] for i in items)

    assert names(labelSelector="group=sel,tier=web") == ["sel-a", "sel-c"]
    assert names(labelSelector="group=sel,tier!=web") == ["sel-b"]
    assert names(labelSelector="group=sel,tier in (db,x)") == ["sel-b"]
    assert names(labelSelector="group=sel,!tier") == []
    assert names(fieldSelector="metadata.name=sel-b") == ["sel-b"]
    items = http.get(CM, params={"labelSelector": "group=sel"}).json()["items"]
    assert all("kind" not in i for i in items)  # list items carry no kind, as on a cluster


def test_pods_need_their_service_account_and_start_running(
    http: httpx.Client, double: KubeDouble
) -> None:
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "runner"},
        "spec": {
            "serviceAccountName": "missing",
            "containers": [{"name": "c", "image": "example/x:1"}],
        },
    }
    refused = http.post("/api/v1/namespaces/default/pods", json=pod)
    assert refused.status_code == 403
    assert 'serviceaccount "missing" not found' in refused.json()["message"]
    pod["spec"]["serviceAccountName"] = "default"
    assert http.post("/api/v1/namespaces/default/pods", json=pod).status_code == 201
    params = {"watch": "true", "fieldSelector": "metadata.name=runner", "timeoutSeconds": "10"}
    with httpx.stream(
        "GET", f"{double.url}/api/v1/namespaces/default/pods", params=params, timeout=15
    ) as stream:
        for line in stream.iter_lines():
            status = json.loads(line)["object"].get("status", {})
            if status.get("phase") == "Running":
                assert status["podIP"] == double.controller.pod_ip
                break
        else:
            pytest.fail("the pod never ran")
    events = http.get(
        "/api/v1/namespaces/default/events", params={"fieldSelector": "involvedObject.name=runner"}
    ).json()["items"]
    assert "Scheduled" in {e["reason"] for e in events}


def test_apply_merges_keyed_lists_and_removes_dropped_items(http: httpx.Client) -> None:
    def with_env(*names: str) -> dict[str, Any]:
        body = deployment("envs", "envs")
        container = body["spec"]["template"]["spec"]["containers"][0]
        container["env"] = [{"name": n, "value": n.lower()} for n in names]
        return body

    assert apply(http, DEPLOYMENTS, with_env("A", "B"), "labfleet").status_code == 201
    # Another manager adds its own variable to the same container.
    other = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "envs"},
        "spec": {
            "template": {
                "spec": {"containers": [{"name": "main", "env": [{"name": "C", "value": "c"}]}]}
            }
        },
    }
    assert apply(http, DEPLOYMENTS, other, "sidecar-injector").status_code == 200
    result = apply(http, DEPLOYMENTS, with_env("A"), "labfleet").json()
    env = result["spec"]["template"]["spec"]["containers"][0]["env"]
    assert [e["name"] for e in env] == ["A", "C"]
    assert result["metadata"]["generation"] == 3


def test_pod_security_admission_enforces_the_namespace_level(http: httpx.Client) -> None:
    namespace = {
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {
            "name": "strict",
            "labels": {"pod-security.kubernetes.io/enforce": "restricted"},
        },
    }
    assert http.post("/api/v1/namespaces", json=namespace).status_code == 201
    container: dict[str, Any] = {"name": "c", "image": "example/x:1"}
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "loose"}}
    pod["spec"] = {"containers": [container]}
    refused = http.post("/api/v1/namespaces/strict/pods", json=pod)
    assert refused.status_code == 403
    message = refused.json()["message"]
    assert 'violates PodSecurity "restricted:latest"' in message
    assert "allowPrivilegeEscalation != false" in message and "runAsNonRoot != true" in message

    container["securityContext"] = {
        "allowPrivilegeEscalation": False,
        "runAsNonRoot": True,
        "capabilities": {"drop": ["ALL"]},
        "seccompProfile": {"type": "RuntimeDefault"},
    }
    assert http.post("/api/v1/namespaces/strict/pods", json=pod).status_code == 201
    pod["metadata"] = {"name": "hostpath"}
    pod["spec"]["volumes"] = [{"name": "h", "hostPath": {"path": "/"}}]
    assert http.post("/api/v1/namespaces/strict/pods", json=pod).status_code == 403
    # The default namespace enforces nothing, as on a fresh cluster.
    assert http.post("/api/v1/namespaces/default/pods", json=pod).status_code == 201
