"""The fake controllers of the Kubernetes API double.

No kubelet or controller-manager runs here, so this stands in for them,
level-triggered: Deployments, StatefulSets and DaemonSets get pods from
their templates (through the same admission as any pod, so a Pod Security
violation or a missing ServiceAccount shows up as ``ReplicaFailure``), pods
become Running with a podIP the test chooses (so a real HTTP server can
answer for the "pod"), PVCs bind, load balancers get an address, and the
Events KubeSpawner shows as spawn progress are written. A pod that needs a
missing ConfigMap/Secret/PVC, or whose image is listed in
``unpullable_images``, stays Pending with the kubelet's reason.
"""

from __future__ import annotations

import contextlib
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from .kinds import BY_KIND, Kind
from .managers import now
from .store import ApiStatus, Obj, Store

WORKLOADS = ("Deployment", "StatefulSet", "DaemonSet")
#: Which template generation a controller-made pod was created from.
GENERATION_ANNOTATION = "double.labfleet.io/generation"


def _pod_ready(pod: Obj) -> bool:
    conditions = (pod.get("status") or {}).get("conditions") or []
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)


def _k(api_version: str, kind: str) -> Kind:
    return BY_KIND[api_version, kind]


@dataclass
class Controller:
    store: Store
    #: Seconds after a spec change before a pod/workload is reported ready.
    ready_after: float = 0.3
    #: The podIP pods get; 127.0.0.1 lets a test's local server play the pod.
    pod_ip: str = "127.0.0.1"
    #: Set False to simulate pods that never start (rollout timeouts).
    pods_start: bool = True
    #: Images whose pull fails (the pod stays Pending in ImagePullBackOff).
    unpullable_images: set[str] = field(default_factory=set)
    #: A real runner for pods (tests/containers' podman bridge): called with each pending
    #: pod that is due to start; returns its podIP once its container runs, None until then.
    #: Unset: pods just become Running with ``pod_ip``.
    kubelet: Callable[[Obj], str | None] | None = None
    _seen: dict[tuple[str, str, str, int], float] = field(default_factory=dict)
    _failures: dict[str, str] = field(default_factory=dict)
    _events_sent: set[tuple[str, str, str]] = field(default_factory=set)

    # -- helpers -------------------------------------------------------------
    def _age(self, obj: Obj) -> float:
        meta = obj["metadata"]
        key = (obj["kind"], meta.get("namespace", ""), meta["name"], meta.get("generation", 1))
        first = self._seen.setdefault(key, time.monotonic())
        return time.monotonic() - first

    def missing_references(self, namespace: str, spec: dict[str, Any]) -> list[str]:
        store = self.store
        missing = []
        account = spec.get("serviceAccountName") or "default"
        if store.find(_k("v1", "ServiceAccount"), namespace, account) is None:
            missing.append(f"serviceaccount/{account}")
        for volume in spec.get("volumes") or []:
            for source, kind, key in (
                ("configMap", "ConfigMap", "name"),
                ("secret", "Secret", "secretName"),
                ("persistentVolumeClaim", "PersistentVolumeClaim", "claimName"),
            ):
                ref = volume.get(source)
                wanted = ref.get(key) if ref and not ref.get("optional") else None
                if wanted and store.find(_k("v1", kind), namespace, wanted) is None:
                    missing.append(f"{kind.lower()}/{wanted}")
        for container in (spec.get("initContainers") or []) + (spec.get("containers") or []):
            for env in container.get("env") or []:
                source = env.get("valueFrom") or {}
                for ref_name, kind in (
                    ("secretKeyRef", "Secret"),
                    ("configMapKeyRef", "ConfigMap"),
                ):
                    ref = source.get(ref_name)
                    if ref and not ref.get("optional"):
                        found = store.find(_k("v1", kind), namespace, ref.get("name", ""))
                        data = (found or {}).get("data") or {}
                        if found is None or ref.get("key") not in data:
                            missing.append(f"{kind.lower()}/{ref.get('name')}[{ref.get('key')}]")
        return missing

    def _event(self, pod: Obj, reason: str, message: str, kind: str = "Normal") -> None:
        meta = pod["metadata"]
        marker = (meta["namespace"], meta["uid"], reason)
        if marker in self._events_sent:
            return
        self._events_sent.add(marker)
        stamp = now()
        event = {
            "metadata": {
                "name": f"{meta['name']}.{len(self._events_sent):x}",
                "namespace": meta["namespace"],
            },
            "involvedObject": {
                "kind": "Pod",
                "apiVersion": "v1",
                "name": meta["name"],
                "namespace": meta["namespace"],
                "uid": meta["uid"],
            },
            "reason": reason,
            "message": message,
            "type": kind,
            "count": 1,
            "firstTimestamp": stamp,
            "lastTimestamp": stamp,
            "source": {"component": "labfleet-kube-double"},
        }
        with contextlib.suppress(ApiStatus):
            self.store.create(_k("v1", "Event"), meta["namespace"], event, "controller")

    # -- reconcilers -------------------------------------------------------
    def _owned_pods(self, owner: Obj) -> list[Obj]:
        uid = owner["metadata"]["uid"]
        items, _ = self.store.list(_k("v1", "Pod"), owner["metadata"]["namespace"])
        return [
            p
            for p in items
            if any(r.get("uid") == uid for r in p["metadata"].get("ownerReferences") or [])
        ]

    def _make_pod(self, owner: Obj, generation: int) -> None:
        """What the ReplicaSet/DaemonSet/StatefulSet controllers do: a pod from the template."""
        meta = owner["metadata"]
        template = (owner.get("spec") or {}).get("template") or {}
        pod_meta = dict(template.get("metadata") or {})
        pod_meta["name"] = f"{meta['name']}-{uuid.uuid4().hex[:5]}"
        pod_meta["annotations"] = {
            **(pod_meta.get("annotations") or {}),
            GENERATION_ANNOTATION: str(generation),
        }
        pod_meta["ownerReferences"] = [
            {
                "apiVersion": owner["apiVersion"],
                "kind": owner["kind"],
                "name": meta["name"],
                "uid": meta["uid"],
                "controller": True,
                "blockOwnerDeletion": True,
            }
        ]
        pod = {"metadata": pod_meta, "spec": template.get("spec") or {}}
        try:
            self.store.create(_k("v1", "Pod"), meta["namespace"], pod, "kube-controller-manager")
        except ApiStatus as error:
            self._failures[meta["uid"]] = error.message  # e.g. missing ServiceAccount
        else:
            self._failures.pop(meta["uid"], None)

    def _workload(self, obj: Obj) -> None:
        meta, spec = obj["metadata"], obj.get("spec") or {}
        status = obj.get("status") or {}
        generation = meta.get("generation", 1)
        replicas = spec.get("replicas", 1) if obj["kind"] != "DaemonSet" else 1
        pods = self._owned_pods(obj)
        for pod in pods:  # Recreate: old pods go before new ones come
            if pod["metadata"].get("annotations", {}).get(GENERATION_ANNOTATION) != str(generation):
                self.store.delete(
                    _k("v1", "Pod"), pod["metadata"]["namespace"], pod["metadata"]["name"]
                )
        pods = [
            p
            for p in pods
            if p["metadata"]["annotations"].get(GENERATION_ANNOTATION) == str(generation)
        ]
        for _ in range(replicas - len(pods)):
            self._make_pod(obj, generation)
        for pod in pods[replicas:]:
            self.store.delete(
                _k("v1", "Pod"), pod["metadata"]["namespace"], pod["metadata"]["name"]
            )
        pods = self._owned_pods(obj)
        ready_count = sum(1 for p in pods if _pod_ready(p))
        ready = ready_count >= replicas
        if obj["kind"] == "DaemonSet":
            wanted: dict[str, Any] = {
                "observedGeneration": generation,
                "currentNumberScheduled": 1,
                "desiredNumberScheduled": 1,
                "numberMisscheduled": 0,
                "numberReady": ready_count,
                "numberAvailable": ready_count,
                "updatedNumberScheduled": len(pods),
            }
        else:
            failure = self._failures.get(meta["uid"])
            if ready:
                available = {
                    "type": "Available",
                    "status": "True",
                    "reason": "MinimumReplicasAvailable",
                    "message": "Deployment has minimum availability.",
                }
            else:
                available = {
                    "type": "Available",
                    "status": "False",
                    "reason": "MinimumReplicasUnavailable",
                    "message": "Deployment does not have minimum availability.",
                }
            conditions = [available]
            if failure:
                conditions.append(
                    {
                        "type": "ReplicaFailure",
                        "status": "True",
                        "reason": "FailedCreate",
                        "message": failure,
                    }
                )
            wanted = {
                "observedGeneration": generation,
                "replicas": len(pods),
                "updatedReplicas": len(pods),
                "readyReplicas": ready_count,
                "availableReplicas": ready_count,
                "conditions": conditions,
            }
            if not ready:
                wanted["unavailableReplicas"] = replicas - ready_count
            if obj["kind"] == "StatefulSet":
                wanted.pop("conditions")
                wanted["currentReplicas"] = len(pods)
        comparable = {k: v for k, v in status.items() if k != "conditions"}
        old_conditions = [
            (c.get("type"), c.get("status"), c.get("message"))
            for c in status.get("conditions") or []
        ]
        new_conditions = [
            (c.get("type"), c.get("status"), c.get("message"))
            for c in wanted.get("conditions") or []
        ]
        if (
            comparable != {k: v for k, v in wanted.items() if k != "conditions"}
            or old_conditions != new_conditions
        ):
            for condition in wanted.get("conditions", []):
                condition["lastTransitionTime"] = condition["lastUpdateTime"] = now()
            self.store.set_status(
                _k(obj["apiVersion"], obj["kind"]), meta["namespace"], meta["name"], wanted
            )

    def _pod(self, pod: Obj) -> None:
        meta, spec = pod["metadata"], pod.get("spec") or {}
        status = pod.get("status") or {}
        if status.get("phase") != "Pending":
            return
        self._event(
            pod,
            "Scheduled",
            f"Successfully assigned {meta['namespace']}/{meta['name']} to double-node",
        )
        missing = self.missing_references(meta["namespace"], spec)
        if missing:
            self._event(pod, "FailedMount", "missing: " + ", ".join(missing), "Warning")
            self._waiting(pod, "CreateContainerConfigError", "not found: " + ", ".join(missing))
            return
        unpullable = [
            c["image"] for c in spec.get("containers") or [] if c["image"] in self.unpullable_images
        ]
        if unpullable:
            self._waiting(pod, "ImagePullBackOff", f'Back-off pulling image "{unpullable[0]}"')
            return
        if not self.pods_start or self._age(pod) < self.ready_after:
            return
        pod_ip = self.pod_ip
        if self.kubelet is not None:
            started = self.kubelet(pod)
            if started is None:
                return
            pod_ip = started
        for container in spec.get("containers") or []:
            self._event(
                pod,
                f"Pulled-{container['name']}",
                f'Container image "{container["image"]}" already present',
            )
        self._event(pod, "Started", "Started container(s)")
        stamp = now()
        running = {
            "phase": "Running",
            "podIP": pod_ip,
            "podIPs": [{"ip": pod_ip}],
            "hostIP": "10.0.0.1",
            "startTime": stamp,
            "qosClass": status.get("qosClass", "BestEffort"),
            "conditions": [
                {"type": t, "status": "True", "lastTransitionTime": stamp}
                for t in ("PodScheduled", "Initialized", "ContainersReady", "Ready")
            ],
            "containerStatuses": [
                {
                    "name": c["name"],
                    "image": c["image"],
                    "imageID": "",
                    "containerID": f"containerd://{meta['uid']}-{c['name']}",
                    "ready": True,
                    "started": True,
                    "restartCount": 0,
                    "state": {"running": {"startedAt": stamp}},
                }
                for c in spec.get("containers") or []
            ],
        }
        self.store.set_status(_k("v1", "Pod"), meta["namespace"], meta["name"], running)

    def _waiting(self, pod: Obj, reason: str, message: str) -> None:
        """Leave the pod Pending with its containers waiting, as a kubelet reports it."""
        meta, spec = pod["metadata"], pod.get("spec") or {}
        status = {
            "phase": "Pending",
            "qosClass": (pod.get("status") or {}).get("qosClass", "BestEffort"),
            "containerStatuses": [
                {
                    "name": c["name"],
                    "image": c["image"],
                    "imageID": "",
                    "ready": False,
                    "started": False,
                    "restartCount": 0,
                    "state": {"waiting": {"reason": reason, "message": message}},
                }
                for c in spec.get("containers") or []
            ],
        }
        if pod.get("status") != status:
            self.store.set_status(_k("v1", "Pod"), meta["namespace"], meta["name"], status)

    def _claim(self, claim: Obj) -> None:
        if (claim.get("status") or {}).get("phase") == "Bound":
            return
        spec = claim.get("spec") or {}
        storage = ((spec.get("resources") or {}).get("requests") or {}).get("storage", "1Gi")
        status = {
            "phase": "Bound",
            "accessModes": spec.get("accessModes", []),
            "capacity": {"storage": storage},
        }
        meta = claim["metadata"]
        self.store.set_status(
            _k("v1", "PersistentVolumeClaim"), meta["namespace"], meta["name"], status
        )

    def _service(self, service: Obj) -> None:
        if (service.get("spec") or {}).get("type") != "LoadBalancer":
            return
        if (service.get("status") or {}).get("loadBalancer", {}).get("ingress"):
            return
        meta = service["metadata"]
        status = {"loadBalancer": {"ingress": [{"ip": "203.0.113.10", "ipMode": "VIP"}]}}
        self.store.set_status(_k("v1", "Service"), meta["namespace"], meta["name"], status)

    def reconcile(self) -> None:
        """One pass over everything; called every tick by the double's loop."""
        with self.store.lock:
            objects = list(self.store.objects.values())
        for obj in objects:
            try:
                if obj["kind"] in WORKLOADS:
                    self._workload(obj)
                elif obj["kind"] == "Pod":
                    self._pod(obj)
                elif obj["kind"] == "PersistentVolumeClaim":
                    self._claim(obj)
                elif obj["kind"] == "Service":
                    self._service(obj)
            except ApiStatus:
                continue  # deleted meanwhile
