"""The rendered hub and proxy run in real containers; a user signs in and runs code.

Real: the hub image and labfleet-proxy (podman, from the Deployments ``labfleet apply``
put in the API double), JupyterHub with KubeSpawner in the hub container, the user image
running ``jupyterhub-singleuser`` and an IPython kernel. Doubles, named: the Kubernetes API
(tests/kube/double) and the kubelet (tests/containers/podman_kubelet.py).
"""

from __future__ import annotations

import base64
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from tests.containers.kube_to_podman import http_probe
from tests.containers.podman_fleet import PASSWORD, PodmanFleet, http_ok
from tests.support.client import HubUser

#: "  ok      1.2s  step name  detail" (labfleet.kube.smoke.plan.report_line)
REPORT_LINE = re.compile(r"^  (ok|FAIL|skip)\s+[\d.]+s  (.+?)(?:  (.*))?$")

pytestmark = [pytest.mark.integration, pytest.mark.timeout(900)]


def test_hub_passes_its_rendered_probes_and_a_user_signs_in_through_the_proxy(
    fleet: PodmanFleet,
) -> None:
    hub = fleet.deployments["lab-hub"]["spec"]["template"]["spec"]["containers"][0]
    for which in ("startupProbe", "readinessProbe", "livenessProbe"):
        probe = http_probe(hub, which)
        assert probe is not None
        assert http_ok(fleet.ip, probe[1], probe[0]), which
    user = HubUser(fleet.proxy_url, "ada")
    try:
        response = user.login(PASSWORD)
        assert response.status_code == 200, response.text[-2000:]
        assert str(response.url).endswith("/hub/home"), response.url
        me = user.api("GET", "/user")
        assert me.status_code == 200 and me.json()["name"] == "ada"
    finally:
        user.close()
    # The double saw the hub and proxy pods come up with the podman pod's address.
    pods = fleet.double.list("v1", "Pod", "lab")
    assert {p["status"].get("podIP") for p in pods if p["metadata"]["name"].startswith("lab-")} == {
        fleet.ip
    }


def test_kubespawner_in_the_hub_container_starts_a_user_container_that_runs_code(
    fleet: PodmanFleet,
) -> None:
    user = HubUser(fleet.proxy_url, "grace")
    try:
        assert user.login(PASSWORD).status_code == 200
        started = user.start_server()
        assert started.status_code in (201, 202), started.text
        try:
            user.wait_ready(timeout=240)
        except TimeoutError:
            raise AssertionError(_diagnose(fleet)) from None
        pod = fleet.double.get("v1", "Pod", "jupyter-grace", "lab")
        assert pod is not None
        token = user.new_token()
        out = user.run_code(
            token,
            "import os, pathlib; p = pathlib.Path.home() / 'hello.txt'; p.write_text('hi');"
            "print(os.getuid(), os.getgid(), 100 in os.getgroups(), p.stat().st_uid,"
            " os.path.exists('/var/run/secrets/kubernetes.io/serviceaccount/token'))",
            timeout=120,
        )
        # runAsUser/runAsGroup and fsGroup from KubeSpawner's pod; the claim is the home
        assert out.split() == ["1000", "100", "True", "1000", "False"], out
        assert user.contents_get(token, "hello.txt").json()["content"] == "hi"
        stopped = user.stop_server()
        assert stopped.status_code in (202, 204), stopped.text
        user.wait_stopped(timeout=120)
    finally:
        user.close()


def wait_for(what: str, check: Callable[[], Any], timeout: float = 120) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.5)
    raise AssertionError(f"timed out waiting for {what}")


def fleet_api(fleet: PodmanFleet) -> httpx.Client:
    """The hub API through the proxy container, with the service token from the Secret."""
    secret = fleet.double.get("v1", "Secret", "lab-hub-secret", "lab")
    assert secret is not None
    token = base64.b64decode(secret["data"]["supervisor_token"]).decode()
    return httpx.Client(
        base_url=fleet.proxy_url + "/hub/api", headers={"Authorization": f"token {token}"}
    )


def _diagnose(fleet: PodmanFleet) -> str:
    lines: list[Any] = [f"kubelet errors: {fleet.kubelet.errors}"]
    lines.append("hub log:\n" + fleet.logs(fleet.container("lab-hub")))
    for container in fleet.kubelet.containers():
        lines.append(f"{container}:\n" + fleet.logs(container))
    return "\n".join(str(line) for line in lines)


def _smoke(fleet: PodmanFleet, *extra: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "labfleet.cli.main",
        "smoke",
        "-c",
        str(fleet.config_path),
        "--kubeconfig",
        str(fleet.kubeconfig),
        # the double serves no port-forward and its load balancer address is made up
        "--url",
        fleet.proxy_url,
        "--spawn-timeout",
        "240",
        *extra,
    ]


def _smoke_leftovers(fleet: PodmanFleet) -> list[str]:
    found = [
        f"{kind}/{o['metadata']['name']}"
        for kind in ("Pod", "PersistentVolumeClaim")
        for o in fleet.double.list("v1", kind, "lab")
        if "smoke-" in o["metadata"]["name"]
    ]
    return found + fleet.kubelet.containers()


def test_labfleet_smoke_runs_code_probes_the_boundary_and_removes_what_it_made(
    fleet: PodmanFleet,
) -> None:
    result = subprocess.run(_smoke(fleet), text=True, capture_output=True, timeout=600, check=False)
    out = result.stdout
    print(out)  # the report, for whoever reads the test log
    lines = {
        m.group(2): m.group(1) + " " + (m.group(3) or "")
        for m in map(REPORT_LINE.match, out.splitlines())
        if m
    }
    for step in (
        "read the hub's service token (secret/lab-hub-secret)",
        "find the access path",
        "reach the hub",
        "create temporary users",
        "start their servers",
        "run code in a kernel",
        "boundary: the hub API without a token",
        "remove what the smoke test created",
    ):
        assert lines.get(step, "").startswith("ok "), f"{step}:\n{out}\n{result.stderr}"
    assert "6 * 7 = 42 as uid 1000 on jupyter-smoke-" in out
    # The rendered NetworkPolicies' egress, enforced by the kubelet bridge's iptables rules,
    # keeps a user's pod from the metadata server, the proxy API and the other user's pod.
    for step in (
        "boundary: the cloud metadata server",
        "boundary: another user's server",
        "boundary: the proxy's REST API",
    ):
        assert lines.get(step, "").startswith("ok "), f"{step}:\n{out}"
        assert "is unreachable from a user's pod" in lines[step]
    assert any("smoke-" in c for c in fleet.kubelet.policed), fleet.kubelet.policed
    assert result.returncode == 0, out + result.stderr
    assert out.splitlines()[-1].startswith("smoke test passed")
    wait_for("the smoke test's pods to go", lambda: not _smoke_leftovers(fleet))
    users = fleet_api(fleet).get("/users").json()
    assert not [u["name"] for u in users if u["name"].startswith("smoke-")]


def test_labfleet_smoke_interrupted_while_spawning_still_cleans_up(fleet: PodmanFleet) -> None:
    process = subprocess.Popen(
        _smoke(fleet, "--no-neighbour"),
        text=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    seen: list[str] = []
    try:
        assert process.stdout is not None
        for line in process.stdout:
            seen.append(line)
            if "sign in as" in line:
                break
        wait_for("the temporary user's pod", lambda: _smoke_leftovers(fleet))
        process.send_signal(signal.SIGTERM)
        rest, _ = process.communicate(timeout=300)
    finally:
        if process.poll() is None:
            process.kill()
        process.wait()
    out = "".join(seen) + rest
    assert process.returncode == 130, out
    assert "remove what the smoke test created" in out and "interrupted" in out, out
    wait_for("the smoke test's pods to go", lambda: not _smoke_leftovers(fleet))
    users = fleet_api(fleet).get("/users").json()
    assert not [u["name"] for u in users if u["name"].startswith("smoke-")]
