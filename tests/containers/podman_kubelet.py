"""A test-only kubelet: the pods the Kubernetes API double admits, run as podman containers.

No kubelet can run here. This bridge plugs into the double's controller (its ``kubelet``
hook): a users' server pod that the double has admitted (Pod Security, ServiceAccount,
references) is translated by :mod:`kube_to_podman` and started from its image with its
command, environment, security context, limits and volumes on the podman network; the pod
becomes Running with the container's real IP, so the hub, the proxy and the test reach the
server the way they would in a cluster. A pod deleted in the double has its container
removed. Pods of the platform itself (hub, proxy) run in one podman pod started by the
test (``podman_fleet``); for those the hook reports that pod's IP once their probes pass.

The egress of the NetworkPolicies that select a user pod is enforced with iptables in the
container's network namespace (netpol_iptables.py), before the pod is reported Running.
What it does not do, said plainly: ingress rules are not enforced, Services are ``/etc/hosts``
entries, a container that exits does not make its pod Failed, and there is one node.
"""

from __future__ import annotations

import os
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from labfleet.kube.meta import COMPONENT_USER, LABEL_COMPONENT
from tests.containers.kube_to_podman import ClusterAccess, translate_pod
from tests.containers.netpol_iptables import Selector, egress_rules, selects
from tests.kube.double.kinds import BY_KIND
from tests.kube.double.store import Obj, Store

_POD = BY_KIND["v1", "Pod"]


@dataclass
class _Started:
    namespace: str
    name: str
    uid: str
    container: str
    ip: str | None = None


def write_files(files: dict[Path, bytes], dirs: dict[Path, tuple[int, int]]) -> None:
    """What a kubelet puts on disk for a pod: volume files (0644) and owned directories."""
    for path, content in files.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.parent.chmod(0o755)
        path.write_bytes(content)
        path.chmod(0o644)
    for path, (uid, gid) in dirs.items():
        path.mkdir(parents=True, exist_ok=True)
        os.chown(path, uid, gid)
        path.chmod(0o2775)


def container_ip(env: dict[str, str], container: str) -> str:
    out = subprocess.run(
        [
            "podman",
            "inspect",
            "--format",
            "{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}",
            container,
        ],
        env=env,
        text=True,
        capture_output=True,
        check=True,
    )
    return out.stdout.strip()


@dataclass
class PodmanKubelet:
    """The double's ``kubelet`` hook, backed by podman (see the module docstring)."""

    env: dict[str, str]
    store: Store
    workdir: Path
    network: str
    #: --add-host values every user container gets (the platform's Services)
    hosts: list[str]
    prefix: str
    cluster: ClusterAccess | None = None
    #: The podman network's subnet: what ``namespaceSelector: {}`` (every pod) stands for
    pod_subnet: str = "10.88.0.0/16"
    #: Enforce the egress of the NetworkPolicies selecting each pod (netpol_iptables.py)
    network_policies: bool = True
    #: The podman pod running hub + proxy: reported as their pods' IP (None: not ready yet)
    platform_ip: str | None = None
    errors: list[str] = field(default_factory=list)
    #: container -> number of iptables rules its egress got
    policed: dict[str, int] = field(default_factory=dict)
    _started: dict[str, _Started] = field(default_factory=dict)
    _queue: list[Obj] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    # -- the hook (runs in the double's thread: never blocks) -------------------
    def __call__(self, pod: Obj) -> str | None:
        labels = pod["metadata"].get("labels") or {}
        if labels.get(LABEL_COMPONENT) != COMPONENT_USER:
            return self.platform_ip
        uid = pod["metadata"]["uid"]
        with self._lock:
            started = self._started.get(uid)
            if started is None and all(p["metadata"]["uid"] != uid for p in self._queue):
                self._queue.append(pod)
            return started.ip if started else None

    # -- the worker ------------------------------------------------------------
    def start(self) -> PodmanKubelet:
        self._thread = threading.Thread(target=self._run, name="podman-kubelet", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(30)
        for started in list(self._started.values()):
            self._remove(started)

    def containers(self) -> list[str]:
        return [s.container for s in self._started.values()]

    def _run(self) -> None:
        while not self._stop.is_set():
            with self._lock:
                queued, self._queue = self._queue, []
            for pod in queued:
                self._launch(pod)
            for started in list(self._started.values()):
                live = self.store.find(_POD, started.namespace, started.name)
                if live is None or live["metadata"]["uid"] != started.uid:
                    self._remove(started)
            time.sleep(0.2)

    def _objects(self, namespace: str) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = []
        for kind in ("Secret", "ConfigMap"):
            items, _ = self.store.list(BY_KIND["v1", kind], namespace)
            found += items
        return found

    def _launch(self, pod: Obj) -> None:
        meta = pod["metadata"]
        name = f"{self.prefix}-{meta['namespace']}-{meta['name']}"[:120]
        placement = [
            "--network",
            self.network,
            "--hostname",
            meta["name"][:63],
            "--pull",
            "never",
            *self.hosts,
        ]
        try:
            translated = translate_pod(
                pod["spec"],
                meta["namespace"],
                self._objects(meta["namespace"]),
                name=name,
                workdir=self.workdir,
                placement=placement,
                cluster=self.cluster,
            )
            write_files(translated.files, translated.dirs)
            result = subprocess.run(
                translated.argv, env=self.env, text=True, capture_output=True, check=False
            )
            if result.returncode != 0:
                raise RuntimeError(result.stderr.strip())
            started = _Started(meta["namespace"], meta["name"], meta["uid"], name)
            with self._lock:
                self._started[meta["uid"]] = started
            if self.network_policies:
                self._enforce_egress(pod, name)
            started.ip = container_ip(self.env, name)
        except Exception as error:
            self.errors.append(f"pod {meta['namespace']}/{meta['name']}: {error}")

    def _pod_ips(self, namespace: str, selector: Selector) -> list[str]:
        items, _ = self.store.list(_POD, namespace)
        return [
            p["status"]["podIP"]
            for p in items
            if selects(selector, p["metadata"].get("labels") or {})
            and (p.get("status") or {}).get("podIP")
        ]

    def _enforce_egress(self, pod: Obj, container: str) -> None:
        """The pod's egress policies as iptables rules in its network namespace."""
        meta = pod["metadata"]
        policies, _ = self.store.list(
            BY_KIND["networking.k8s.io/v1", "NetworkPolicy"], meta["namespace"]
        )
        rules = egress_rules(
            policies, meta["namespace"], meta.get("labels") or {}, self._pod_ips, self.pod_subnet
        )
        pid = subprocess.run(
            ["podman", "inspect", "--format", "{{.State.Pid}}", container],
            env=self.env,
            text=True,
            capture_output=True,
            check=True,
        ).stdout.strip()
        for rule in rules:
            subprocess.run(
                ["nsenter", "--target", pid, "--net", "iptables", "-w", *rule],
                text=True,
                capture_output=True,
                check=True,
            )
        self.policed[container] = len(rules)

    def _remove(self, started: _Started) -> None:
        subprocess.run(
            ["podman", "rm", "--force", "--time", "5", started.container],
            env=self.env,
            capture_output=True,
            check=False,
        )
        with self._lock:
            self._started.pop(started.uid, None)

    def logs(self, container: str) -> str:
        result = subprocess.run(
            ["podman", "logs", container], env=self.env, text=True, capture_output=True
        )
        return result.stdout + result.stderr
