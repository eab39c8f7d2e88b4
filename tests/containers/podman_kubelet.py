"""A test-only kubelet: the pods the Kubernetes API double admits, run as podman containers.

No kubelet can run here. This bridge plugs into the double's controller (its ``kubelet``
hook): a users' server pod (or a ``services:`` entry's pod) that the double has admitted
(Pod Security, ServiceAccount, references) is translated by :mod:`kube_to_podman` and
started from its image with its command, environment, security context, limits and volumes
on the podman network (a pod of several containers as a podman pod: one network); the pod
becomes Running with the container's real IP, so the hub, the proxy and the test reach the
server the way they would in a cluster. A pod deleted in the double has its container
removed. Pods of the platform itself (hub, proxy) run in one podman pod started by the
test (``podman_fleet``); for those the hook reports that pod's IP once their probes pass.

The egress of the NetworkPolicies that select a user pod is enforced with iptables in the
container's network namespace (netpol_iptables.py), before the pod is reported Running.
Init containers run first, in order, each to completion (a failing one leaves the pod
Pending, ``Init:Error``, and is not retried). A container that exits is handled the way
a kubelet handles it (pod_exit.py): restarted per ``restartPolicy`` with a crash-loop
back-off (its network namespace is new, so the egress rules are applied again), or left
terminated with its exit code, the pod ``Succeeded`` or ``Failed``; KubeSpawner's poll
then sees a stopped server. What each container writes (``podman logs --follow``) goes
to the double's pod log endpoint, as a kubelet's log files do, so ``kubectl logs`` and
``labfleet logs`` read real lines; the hub and proxy containers' too.
What it does not do, said plainly: ingress rules are not enforced, Services are ``/etc/hosts``
entries, init containers' logs are not served, ``--previous`` logs are not kept apart,
and there is one node.
"""

from __future__ import annotations

import json
import os
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from labfleet.kube.meta import COMPONENT_USER, LABEL_COMPONENT
from labfleet.kube.services import COMPONENT_SERVICE
from tests.containers import pod_exit
from tests.containers.kube_to_podman import ClusterAccess, init_name, translate_pod
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
    #: the pod's first container's name in its spec (KubeSpawner's: "notebook")
    spec_name: str = ""
    restart_policy: str = "Always"
    restarts: int = 0
    #: the podman containers of its init containers (removed with the pod)
    inits: list[str] = field(default_factory=list)
    #: the podman pod holding a pod of several containers (they share its network)
    podman_pod: str | None = None
    #: set once its status says Running (before that the controller writes it)
    running: bool = False
    #: the container ended for good: nothing more to report
    ended: bool = False
    #: exited, waiting out the back-off until this monotonic time
    restart_at: float | None = None
    last_exit: tuple[int, float, float] | None = None


#: The sink a kubelet's log files stand for: (namespace, pod, container, line).
LogSink = Callable[[str, str, str, str], None]


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
    #: where containers' output goes (the double's ``write_pod_log``); None: nowhere
    pod_log: LogSink | None = None
    #: the platform pod's containers: spec container name -> podman container
    platform_containers: dict[str, str] = field(default_factory=dict)
    #: pods whose init container failed (uid): left Pending, never launched again
    init_failed: set[str] = field(default_factory=set)
    #: seconds between looks at the containers' states (one ``podman ps`` for all)
    watch_every: float = 3.0
    #: /etc/hosts files (the platform pod's) whose Service names are pointed at the pod
    #: IP of a bridged pod the Service selects (a ``services:`` entry's gate)
    hosts_files: list[Path] = field(default_factory=list)
    _started: dict[str, _Started] = field(default_factory=dict)
    _queue: list[Obj] = field(default_factory=list)
    _taken: set[str] = field(default_factory=set)
    _follow: list[tuple[str, str, str, str, str | None]] = field(default_factory=list)
    _followed: set[str] = field(default_factory=set)
    _followers: list[subprocess.Popen[str]] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    # -- the hook (runs in the double's thread: never blocks) -------------------
    def __call__(self, pod: Obj) -> str | None:
        labels = pod["metadata"].get("labels") or {}
        uid = pod["metadata"]["uid"]
        if labels.get(LABEL_COMPONENT) not in (COMPONENT_USER, COMPONENT_SERVICE):
            if self.platform_ip is not None:
                self._follow_platform(pod)
            return self.platform_ip
        with self._lock:
            if uid in self.init_failed:
                return None
            started = self._started.get(uid)
            if started is None and uid not in self._taken:
                # once per pod: launching one takes seconds, and the double asks every tick
                self._taken.add(uid)
                self._queue.append(pod)
            if started is not None and started.ip:
                started.running = True  # the controller now writes Running with this IP
            return started.ip if started else None

    def _follow_platform(self, pod: Obj) -> None:
        meta = pod["metadata"]
        with self._lock:
            for container in pod["spec"]["containers"]:
                podman_name = self.platform_containers.get(container["name"])
                key = f"{meta['uid']}/{container['name']}"
                if podman_name and key not in self._followed:
                    self._followed.add(key)
                    entry = (podman_name, meta["namespace"], meta["name"], container["name"])
                    self._follow.append((*entry, None))

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
        for follower in self._followers:
            if follower.poll() is None:
                follower.kill()
            follower.wait()

    def containers(self) -> list[str]:
        return [s.container for s in self._started.values()]

    def container_of(self, namespace: str, pod: str) -> str | None:
        """The podman container running pod ``namespace/pod`` (None: none started)."""
        for started in list(self._started.values()):
            if (started.namespace, started.name) == (namespace, pod):
                return started.container
        return None

    def _run(self) -> None:
        last_watch = 0.0
        while not self._stop.is_set():
            with self._lock:
                queued, self._queue = self._queue, []
                follow, self._follow = self._follow, []
            for pod in queued:
                self._launch(pod)
            for entry in follow:
                self._start_follower(*entry)
            for started in list(self._started.values()):
                live = self.store.find(_POD, started.namespace, started.name)
                if live is None or live["metadata"]["uid"] != started.uid:
                    self._remove(started)
            if self._started and time.monotonic() - last_watch >= self.watch_every:
                last_watch = time.monotonic()
                try:
                    self._watch_exits()
                except Exception as error:  # reported, the loop goes on like a kubelet's
                    self.errors.append(f"watching containers: {error}")
            time.sleep(0.2)

    # -- logs: what a kubelet's log files hold, served by the double ----------
    def _start_follower(
        self, container: str, namespace: str, pod: str, name: str, since: str | None
    ) -> None:
        if self.pod_log is None:
            return
        argv = ["podman", "logs", "--follow", *(["--since", since] if since else []), container]
        follower = subprocess.Popen(
            argv, env=self.env, text=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
        )
        self._followers.append(follower)
        sink = self.pod_log

        def copy_lines() -> None:
            assert follower.stdout is not None
            for line in follower.stdout:
                sink(namespace, pod, name, line.rstrip("\n"))
            follower.wait()

        threading.Thread(target=copy_lines, name=f"logs-{container}", daemon=True).start()

    # -- exits: restart per restartPolicy, or end the pod ----------------------
    def _states(self) -> dict[str, dict[str, Any]]:
        out = subprocess.run(
            ["podman", "ps", "--all", "--format", "json", "--filter", f"name=^{self.prefix}-"],
            env=self.env,
            text=True,
            capture_output=True,
            check=True,
        )
        found: dict[str, dict[str, Any]] = {}
        for entry in json.loads(out.stdout or "[]"):
            for name in entry.get("Names") or []:
                found[name] = entry
        return found

    def _watch_exits(self) -> None:
        states = self._states()
        for started in list(self._started.values()):
            if started.ended or not started.running:
                continue
            if started.restart_at is not None:
                if time.monotonic() >= started.restart_at:
                    self._restart(started)
                continue
            state = states.get(started.container)
            if state is None or state.get("State") not in ("exited", "stopped"):
                continue
            code = int(state.get("ExitCode") or 0)
            ran = (code, float(state.get("StartedAt") or 0), float(state.get("ExitedAt") or 0))
            started.last_exit = ran
            live = self.store.find(_POD, started.namespace, started.name)
            if live is None or live["metadata"]["uid"] != started.uid:
                continue
            status = live.get("status") or {}
            if status.get("phase") != "Running":
                continue  # the controller has not written Running yet: next look
            if not pod_exit.restarts(started.restart_policy, code):
                started.ended = True
                new = pod_exit.ended_status(status, started.spec_name, *ran)
            else:
                started.restart_at = time.monotonic() + pod_exit.backoff(started.restarts)
                new = pod_exit.backing_off_status(status, started.spec_name, *ran)
            self.store.set_status(_POD, started.namespace, started.name, new)

    def _restart(self, started: _Started) -> None:
        started.restart_at = None
        since = pod_exit.stamp(time.time())
        subprocess.run(
            ["podman", "start", started.container], env=self.env, capture_output=True, check=True
        )
        live = self.store.find(_POD, started.namespace, started.name)
        if live is None or live["metadata"]["uid"] != started.uid:
            return
        if self.network_policies:  # a restarted container has a new network namespace
            self._enforce_egress(live, started.container)
        started.restarts += 1
        started.ip = container_ip(self.env, started.container)
        assert started.last_exit is not None
        new = pod_exit.restarted_status(
            live.get("status") or {},
            started.spec_name,
            *started.last_exit,
            time.time(),
            started.ip,
        )
        self.store.set_status(_POD, started.namespace, started.name, new)
        self._start_follower(
            started.container, started.namespace, started.name, started.spec_name, since
        )

    def _objects(self, namespace: str) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = []
        for kind in ("Secret", "ConfigMap"):
            items, _ = self.store.list(BY_KIND["v1", kind], namespace)
            found += items
        return found

    def _launch(self, pod: Obj) -> None:
        meta = pod["metadata"]
        name = f"{self.prefix}-{meta['namespace']}-{meta['name']}"[:120]
        network = ["--network", self.network, "--hostname", meta["name"][:63], *self.hosts]
        placement = [*network, "--pull", "never"]
        several = len(pod["spec"]["containers"]) > 1
        podman_pod = f"{name}-pod" if several else None
        try:
            if podman_pod is not None:  # containers that share one network, as in a pod
                created = subprocess.run(
                    ["podman", "pod", "create", "--name", podman_pod, *network],
                    env=self.env,
                    text=True,
                    capture_output=True,
                )
                if created.returncode != 0:
                    raise RuntimeError(created.stderr.strip())
                placement = ["--pod", podman_pod, "--pull", "never"]
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
            inits = [init_name(name, init) for init, _ in translated.init]
            if not self._run_inits(pod, translated.init, inits):
                return
            for argv in [translated.argv, *(other for _, other in translated.others)]:
                result = subprocess.run(
                    argv, env=self.env, text=True, capture_output=True, check=False
                )
                if result.returncode != 0:
                    raise RuntimeError(result.stderr.strip())
            started = _Started(
                meta["namespace"],
                meta["name"],
                meta["uid"],
                name,
                spec_name=pod["spec"]["containers"][0]["name"],
                restart_policy=pod["spec"].get("restartPolicy") or "Always",
                inits=[*inits, *(f"{name}-{other}" for other, _ in translated.others)],
                podman_pod=podman_pod,
            )
            with self._lock:
                self._started[meta["uid"]] = started
            self._start_follower(name, meta["namespace"], meta["name"], started.spec_name, None)
            for other, _ in translated.others:
                where = (meta["namespace"], meta["name"], other)
                self._start_follower(f"{name}-{other}", *where, None)
            if self.network_policies:
                self._enforce_egress(pod, name)
            ip = container_ip(self.env, self._infra(podman_pod) if podman_pod else name)
            self._point_services(pod, ip)
            started.ip = ip
        except Exception as error:
            self.errors.append(f"pod {meta['namespace']}/{meta['name']}: {error}")

    def _infra(self, podman_pod: str) -> str:
        return subprocess.run(
            ["podman", "pod", "inspect", "--format", "{{.InfraContainerID}}", podman_pod],
            env=self.env,
            text=True,
            capture_output=True,
            check=True,
        ).stdout.strip()

    def _point_services(self, pod: Obj, ip: str) -> None:
        """The Services selecting this pod resolve to its IP in ``hosts_files`` (no kube-proxy:
        a Service's port must equal its target port here)."""
        meta = pod["metadata"]
        services, _ = self.store.list(BY_KIND["v1", "Service"], meta["namespace"])
        for service in services:
            wanted = (service.get("spec") or {}).get("selector")
            if not wanted or not selects({"matchLabels": wanted}, meta.get("labels") or {}):
                continue
            name, ns = service["metadata"]["name"], meta["namespace"]
            names = [name, f"{name}.{ns}", f"{name}.{ns}.svc", f"{name}.{ns}.svc.cluster.local"]
            for path in self.hosts_files:
                kept = [
                    line
                    for line in path.read_text().splitlines()
                    if not set(line.split()[1:]) & set(names)
                ]
                path.write_text("\n".join([*kept, f"{ip}\t{' '.join(names)}", ""]))

    def _run_inits(self, pod: Obj, inits: list[tuple[str, list[str]]], names: list[str]) -> bool:
        """Each init container to completion, in order; a failure leaves the pod Pending."""
        meta = pod["metadata"]
        ran: list[tuple[str, int, float, float]] = []
        for init, argv in inits:
            begun = time.time()
            result = subprocess.run(argv, env=self.env, text=True, capture_output=True)
            ran.append((init, result.returncode, begun, time.time()))
            if result.returncode != 0:
                for other in names:
                    self._rm(other)
                with self._lock:
                    self.init_failed.add(meta["uid"])
                self.store.set_status(
                    _POD, meta["namespace"], meta["name"], pod_exit.init_failed_status(pod, ran)
                )
                self.errors.append(
                    f"pod {meta['namespace']}/{meta['name']}: init container {init} exited "
                    f"{result.returncode}: {(result.stdout + result.stderr).strip()[-500:]}"
                )
                return False
        return True

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

    def _rm(self, container: str) -> None:
        subprocess.run(
            ["podman", "rm", "--force", "--time", "5", container],
            env=self.env,
            capture_output=True,
            check=False,
        )

    def _remove(self, started: _Started) -> None:
        for container in [started.container, *started.inits]:
            self._rm(container)
        if started.podman_pod is not None:
            subprocess.run(
                ["podman", "pod", "rm", "--force", "--time", "5", started.podman_pod],
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
