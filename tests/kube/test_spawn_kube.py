"""KubeSpawner spawns and stops a user's pod through a real JupyterHub, against the API double.

No cluster can run here, so the Kubernetes API is the in-process double
(``tests/kube/double``); everything else is real: labfleet renders the
fleet, the apply engine applies it, JupyterHub 6 runs as a process with
labfleet's KubeSpawner settings and talks to the double through
kubernetes_asyncio. The double's fake kubelet marks the pod Running with
podIP 127.0.0.1, and a tiny HTTP server in this test answers on the pod's
port, so the hub's own readiness check passes.
"""

from __future__ import annotations

import contextlib
import http.server
import json
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import jupyterhub
import pytest

from labfleet.config.load import parse_text
from labfleet.config.model import FleetConfig
from labfleet.kube.apply import Cluster, apply, connect, destroy, status
from labfleet.kube.hub_secret import generate_hub_secrets
from labfleet.kube.render import render_objects
from labfleet.kube.spawner_settings import build_kubespawner_settings
from labfleet.kube.user_namespace import user_namespace_name
from labfleet.naming import server_slug
from tests.auth.hubrunner import free_port, run_hub
from tests.kube.double import KubeDouble, running_double

pytestmark = pytest.mark.integration

NS = "lab"
CONFIG = f"""
name: lab
auth:
  kind: dummy
  dummy:
    password: change-me-please
kubernetes:
  namespace: {NS}
"""


class _Answer(http.server.BaseHTTPRequestHandler):
    """Plays the user's server inside the pod: 200 to anything."""

    seen: list[str]

    def do_GET(self) -> None:
        self.seen.append(self.path)
        body = b'{"version": "double"}'
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("X-JupyterHub-Version", jupyterhub.__version__)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        return None


@contextlib.contextmanager
def pod_server() -> Iterator[tuple[int, list[str]]]:
    seen: list[str] = []
    handler = type("Answer", (_Answer,), {"seen": seen})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", free_port()), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1], seen
    finally:
        server.shutdown()
        server.server_close()


def wait_for(what: str, check: Callable[[], Any], timeout: float = 60) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def server_state(api: httpx.Client, user: str) -> dict[str, Any]:
    response = api.get(f"/users/{user}")
    response.raise_for_status()
    servers: dict[str, Any] = response.json().get("servers", {})
    return servers.get("", {})


@dataclass(frozen=True)
class Case:
    """One way users' pods are placed: the shared hub namespace or one namespace each."""

    config: str
    username: str

    def namespace(self, config: FleetConfig) -> str:
        if config.kubernetes.users.namespaces == "per-user":
            return user_namespace_name(config, self.username)
        return NS


CASES = {
    "shared-namespace": Case(CONFIG, "alice"),
    # A username that is no DNS label: every name derived from it goes through the slug.
    "per-user-namespaces": Case(
        # A quota on limits with a profile that sets none: the LimitRange makes it admissible.
        CONFIG
        + "  users:\n    namespaces: per-user\n    per_user: {quota_cpu: 2, quota_memory: 4G}\n",
        "ada.lovelace@example.com",
    ),
}


@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
def test_kubespawner_spawns_and_stops_a_user_pod(tmp_path: Path, case: Case) -> None:
    config = parse_text(case.config)
    user, quoted = case.username, urllib.parse.quote(case.username)
    namespace, pod_name = case.namespace(config), f"jupyter-{server_slug(case.username)}"
    profile = config.default_profile().slug
    with running_double() as double, pod_server() as (port, seen):
        kubeconfig = double.write_kubeconfig(tmp_path / "kubeconfig", namespace=NS)
        cluster = Cluster(connect(kubeconfig))
        applied = apply(cluster, render_objects(config, generate_hub_secrets()), wait=False)

        settings = build_kubespawner_settings(config)
        settings.pop("ConfigurableHTTPProxy")
        # In the hub pod, labfleet.hub.settings also sets hub_bind_url; here the hub
        # binds to loopback (hubrunner), and the "pod" never calls back.
        settings["JupyterHub"].pop("hub_connect_url")
        settings["JupyterHub"]["authenticator_class"] = "dummy"  # users are made via the API
        settings["Authenticator"] = {"allow_all": True}
        # Answer the spawn request at once (202) so the test can follow its progress.
        settings["JupyterHub"]["tornado_settings"] = {"slow_spawn_timeout": 0}
        settings["KubeSpawner"].update(port=port, start_timeout=60, http_timeout=30)
        with run_hub(tmp_path / "hub", settings, env={"KUBECONFIG": str(kubeconfig)}) as hub:
            api = hub.api()
            created = api.post(f"/users/{quoted}")
            assert created.status_code == 201, created.text
            refuse_hostile_options(api, quoted, double)
            # Per-user namespaces: the second spawn finds the user's account, policy
            # and quota in place (409, then a strategic merge patch).
            for _ in range(2 if namespace != NS else 1):
                spawn(api, quoted, double, f"{namespace}/{pod_name}", profile)
                pod = double.get("v1", "Pod", pod_name, namespace)
                assert pod is not None, hub.log()[-3000:]
                check_pod(pod, double)
                assert pod["status"]["podIP"] == "127.0.0.1"
                assert seen, "the hub never checked the server in the pod"
                claims = [
                    c
                    for c in double.list("v1", "PersistentVolumeClaim", namespace)
                    if (c["metadata"].get("annotations") or {}).get("hub.jupyter.org/username")
                    == user
                ]
                assert len(claims) == 1, "KubeSpawner created no volume for the user"
                if namespace != NS:
                    check_user_namespace(double, namespace)
                report = status(cluster, applied.target)
                assert [(p.user, p.ready, p.ip) for p in report.user_pods] == [
                    (user, True, "127.0.0.1")
                ]

                stopped = api.delete(f"/users/{quoted}/server")
                assert stopped.status_code in (202, 204), stopped.text
                wait_for("the server to stop", lambda: not server_state(api, quoted))
                wait_for(
                    "the pod to be deleted",
                    lambda: double.get("v1", "Pod", pod_name, namespace) is None,
                )
                assert status(cluster, applied.target).user_pods == ()
            # Deleting the hub user (admin page, API, culling.users) keeps their files, and
            # their own namespace with them: only delete_data_with_user would delete them.
            deleted = api.delete(f"/users/{quoted}")
            assert deleted.status_code == 204, deleted.text
            claim = claims[0]["metadata"]["name"]
            assert double.get("v1", "PersistentVolumeClaim", claim, namespace) is not None
            assert double.get("v1", "Namespace", namespace) is not None

        # Users' files outlive their servers and a destroy without --delete-user-data.
        result = destroy(cluster, applied.target)
        assert claim in {k.ref.name for k in result.kept}
        assert double.get("v1", "PersistentVolumeClaim", claim, namespace) is not None
        destroy(cluster, applied.target, delete_user_data=True)
        assert double.get("v1", "PersistentVolumeClaim", claim, namespace) is None
        assert double.get("v1", "Namespace", namespace) is None


def spawn(api: httpx.Client, quoted: str, double: KubeDouble, where: str, profile: str) -> None:
    """Start the default server and follow its progress until ready.

    The pod waits until the progress stream has shown the scheduling event,
    so the events path is checked deterministically.
    """
    double.controller.pods_start = False
    # An explicit profile: JupyterHub 6 otherwise reuses the last options sent,
    # even ones the policy refused (see refuse_hostile_options).
    started = api.post(f"/users/{quoted}/server", json={"profile": profile})
    # 202 (pending); JupyterHub 6 says 201 right after a refused spawn, still pending.
    assert started.status_code in (201, 202), started.text
    messages = follow_progress(api, quoted, double)
    assert any(f"Successfully assigned {where}" in m for m in messages), messages
    assert "Server ready" in messages[-1]
    wait_for("the server to be ready", lambda: server_state(api, quoted).get("ready"))


def refuse_hostile_options(api: httpx.Client, quoted: str, double: KubeDouble) -> None:
    """A profile not offered, or an image of the user's choosing, never reaches the cluster."""
    for options in (
        {"profile": "no-such-profile"},
        {"image": "evil.registry/x:y", "image--unlisted-choice": "evil.registry/x:y\n"},
    ):
        refused = api.post(f"/users/{quoted}/server", json=options)
        assert refused.status_code == 403, refused.text
        assert not server_state(api, quoted)
    made = [w for w in double.store.writes if w.kind == "Pod" and w.verb == "create"]
    assert [w.name for w in made if w.manager != "kube-controller-manager"] == []


def check_user_namespace(double: KubeDouble, namespace: str) -> None:
    """The spawner made the user's own namespace, account, policy and quota first."""
    made = double.get("v1", "Namespace", namespace)
    assert made is not None
    assert made["metadata"]["labels"]["app.kubernetes.io/instance"] == "lab"
    assert double.list("networking.k8s.io/v1", "NetworkPolicy", namespace)
    assert double.list("v1", "ResourceQuota", namespace)
    assert double.list("v1", "LimitRange", namespace)


def follow_progress(api: httpx.Client, user: str, double: KubeDouble) -> list[str]:
    """Read the hub's spawn progress (server-sent events) until the server is ready.

    KubeSpawner builds it from the Events the double's kubelet writes, which
    it watches with a field selector: this checks that path end to end.
    """
    messages: list[str] = []
    with api.stream("GET", f"/users/{user}/server/progress") as stream:
        for line in stream.iter_lines():
            if not line.startswith("data:"):
                continue
            event = json.loads(line[len("data:") :])
            messages.append(str(event.get("message", "")))
            if "Successfully assigned" in messages[-1]:
                double.controller.pods_start = True
            if event.get("ready") or event.get("failed"):
                break
    return messages


def check_pod(pod: dict[str, Any], double: KubeDouble) -> None:
    """The pod KubeSpawner created carries labfleet's labels and restricted security context."""
    labels = pod["metadata"]["labels"]
    assert labels["app.kubernetes.io/instance"] == "lab"
    assert labels["app.kubernetes.io/component"] == "singleuser-server"
    spec = pod["spec"]
    assert spec["automountServiceAccountToken"] is False
    assert spec["securityContext"]["runAsNonRoot"] is True
    assert spec["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    container = spec["containers"][0]
    context = container["securityContext"]
    assert context["runAsUser"] == 1000
    assert context["allowPrivilegeEscalation"] is False
    assert context["capabilities"]["drop"] == ["ALL"]
    assert not context.get("privileged")
    # The double admitted it: the ServiceAccount it names exists.
    account = spec.get("serviceAccountName", "default")
    namespace = pod["metadata"]["namespace"]
    assert double.get("v1", "ServiceAccount", account, namespace) is not None
