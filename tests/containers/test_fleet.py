"""The rendered hub and proxy run in real containers; a user signs in and runs code.

Real: the hub image and labfleet-proxy (podman, from the Deployments ``labfleet apply``
put in the API double), JupyterHub with KubeSpawner in the hub container, the user image
running ``jupyterhub-singleuser`` and an IPython kernel. Doubles, named: the Kubernetes API
(tests/kube/double) and the kubelet (tests/containers/podman_kubelet.py).
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.containers.kube_to_podman import http_probe
from tests.containers.podman_fleet import PASSWORD, PodmanFleet, http_ok
from tests.support.client import HubUser

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
            "print(os.getuid(), os.getgid() , sorted(os.getgroups()), p.stat().st_uid,"
            " os.path.exists('/var/run/secrets/kubernetes.io/serviceaccount/token'))",
            timeout=120,
        )
        uid, gid, *_rest, token_mounted = out.split()
        assert (uid, gid) == ("1000", "100") or uid == "1000", out
        assert token_mounted == "False", "a user pod must not carry an API token"
        assert user.contents_get(token, "hello.txt").json()["content"] == "hi"
        stopped = user.stop_server()
        assert stopped.status_code in (202, 204), stopped.text
        user.wait_stopped(timeout=120)
    finally:
        user.close()


def _diagnose(fleet: PodmanFleet) -> str:
    lines: list[Any] = [f"kubelet errors: {fleet.kubelet.errors}"]
    lines.append("hub log:\n" + fleet.logs(fleet.container("lab-hub")))
    for container in fleet.kubelet.containers():
        lines.append(f"{container}:\n" + fleet.logs(container))
    return "\n".join(str(line) for line in lines)
