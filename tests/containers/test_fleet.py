"""The rendered hub and proxy run in real containers; a user signs in and runs code.

Real: the hub image and labfleet-proxy (podman, from the Deployments ``labfleet apply``
put in the API double), JupyterHub with KubeSpawner in the hub container, the user image
running ``jupyterhub-singleuser`` and an IPython kernel. Doubles, named: the Kubernetes API
(tests/kube/double) and the kubelet (tests/containers/podman_kubelet.py).
"""

from __future__ import annotations

import base64
import contextlib
import os
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

import httpx
import lightkube
import pytest
from lightkube.config.kubeconfig import KubeConfig

from labfleet.kube.meta import COMPONENT_USER, LABEL_COMPONENT
from tests.containers.kube_to_podman import http_probe, translate_pod
from tests.containers.podman_fleet import PASSWORD, PodmanFleet, http_ok
from tests.containers.podman_kubelet import write_files
from tests.kube.double.kinds import BY_KIND
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
    platform = [p for p in pods if p["metadata"]["name"].startswith(("lab-hub-", "lab-proxy-"))]
    assert len(platform) == 2
    assert {p["status"].get("podIP") for p in platform} == {fleet.ip}


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
    # what every bridged container wrote, also those gone by now (the double keeps it)
    logs = fleet.double.server.pod_logs
    for key in sorted(logs._lines):  # a test looks inside the double
        if key[1].startswith("jupyter-"):
            lines.append(f"log of {'/'.join(key)}:\n" + "\n".join(logs.read(key)[-40:]))
    for pod in fleet.double.list("v1", "Pod", "lab"):
        lines.append(f"pod {pod['metadata']['name']}: {pod.get('status')}")
    return "\n".join(str(line) for line in lines)


def _smoke(fleet: PodmanFleet, *extra: str, port_forward: bool = False) -> list[str]:
    """``labfleet smoke`` against the fleet: in through the real ``kubectl port-forward``
    (the fleet is ``cluster-ip``; the double's ``pods/NAME/portforward`` dials the proxy
    pod's address) or, with ``port_forward=False``, straight to the proxy container."""
    argv = [
        sys.executable,
        "-m",
        "labfleet.cli.main",
        "smoke",
        "-c",
        str(fleet.config_path),
        "--kubeconfig",
        str(fleet.kubeconfig),
        "--spawn-timeout",
        "240",
        *extra,
    ]
    return argv if port_forward else [*argv, "--url", fleet.proxy_url]


def _smoke_leftovers(fleet: PodmanFleet) -> list[str]:
    found = [
        f"{kind}/{o['metadata']['name']}"
        for kind in ("Pod", "PersistentVolumeClaim")
        for o in fleet.double.list("v1", kind, "lab")
        if "smoke-" in o["metadata"]["name"]
    ]
    return found + [c for c in fleet.kubelet.containers() if "smoke-" in c]


def test_labfleet_smoke_runs_code_probes_the_boundary_and_removes_what_it_made(
    fleet: PodmanFleet,
) -> None:
    through_kubectl = shutil.which("kubectl") is not None  # scripts/test installs it
    result = subprocess.run(
        _smoke(fleet, port_forward=through_kubectl),
        text=True,
        capture_output=True,
        timeout=600,
        check=False,
    )
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
        assert lines.get(step, "").startswith("ok "), (
            f"{step}:\n{out}\n{result.stderr}\n{_diagnose(fleet)}"
        )
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
    if through_kubectl:
        access = lines["find the access path"]
        assert "through kubectl port-forward service/lab-proxy-public" in access, access
        # the hub was reached through the double's port-forward to the proxy pod, by kubectl
        # (a POST for SPDY, a GET for kubectl 1.31+'s WebSocket tunnel) ...
        forwarded = [
            p
            for _, p in fleet.double.server.requests
            if re.search(r"/pods/lab-proxy-[^/]+/portforward", p)
        ]
        assert forwarded, fleet.double.server.requests[-20:]
        # ... and smoke stopped that kubectl (by its pid) before it exited
        found = re.search(r"\(pid (\d+)\)", access)
        assert found, access
        assert not os.path.exists(f"/proc/{found.group(1)}"), f"kubectl is still there: {access}"


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


# -- init containers, exits and logs, as a kubelet handles them (the bridge) -----------


def test_the_hub_deployments_upgrade_db_init_container_ran_before_the_hub(
    fleet: PodmanFleet,
) -> None:
    """``labfleet db upgrade`` in the hub image, on the hub's own volumes and environment."""
    (name,) = [n for n in fleet.inits if n.endswith("-init-upgrade-db")]
    code, printed = fleet.inits[name]
    assert code == 0, printed
    assert "[labfleet] hub database schema:" in printed, printed
    # the hub then made its database on the same claim the init container saw
    data = fleet.claims_dir / _hub_claim(fleet)
    assert list(data.glob("*.sqlite")), sorted(p.name for p in data.iterdir())


def _hub_claim(fleet: PodmanFleet) -> str:
    volumes = fleet.deployments["lab-hub"]["spec"]["template"]["spec"]["volumes"]
    (data,) = [v for v in volumes if v["name"] == "data"]
    return str(data["persistentVolumeClaim"]["claimName"])


def _objects(fleet: PodmanFleet) -> list[dict[str, Any]]:
    return fleet.double.list("v1", "Secret", "lab") + fleet.double.list("v1", "ConfigMap", "lab")


def test_the_backup_cronjobs_job_backs_up_the_running_hub_and_the_archive_restores(
    fleet: PodmanFleet,
) -> None:
    """The CronJob's pod, as the double holds it, run once with the hub image's labfleet."""
    user = HubUser(fleet.proxy_url, "backed-up")
    try:
        assert user.login(PASSWORD).status_code == 200  # a row the archive must hold
    finally:
        user.close()
    cron = fleet.double.get("batch/v1", "CronJob", "lab-backup", "lab")
    assert cron is not None
    job = cron["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    assert job["restartPolicy"] == "Never"
    translated = translate_pod(
        job,
        "lab",
        _objects(fleet),
        name=f"{fleet.pod}-backup-once",
        workdir=fleet.workdir / "jobs",
        placement=["--rm", "--network", "none", "--pull", "never"],
        claims_dir=fleet.claims_dir,  # the hub's own database claim, and the archive claim
    )
    write_files(translated.files, translated.dirs)
    argv = [a for a in translated.argv if a != "--detach"]  # a Job's pod: run to its end
    ran = subprocess.run(argv, env=fleet.env, text=True, capture_output=True, timeout=300)
    assert ran.returncode == 0, ran.stdout + ran.stderr
    assert "kept the newest 2 archives; wrote /backups/lab-" in ran.stdout, ran.stdout
    volumes = {v["name"]: v for v in job["volumes"]}
    archives_dir = fleet.claims_dir / volumes["backups"]["persistentVolumeClaim"]["claimName"]
    (archive,) = archives_dir.glob("*.labfleet-backup")
    # restore with the same labfleet, in the hub image, into an empty data directory
    # restore writes beside the data directory first, then renames: give it a parent
    restored = fleet.workdir / "restored"
    restored.mkdir()
    os.chown(restored, 1000, 1000)
    image = _hub_image(fleet)
    restore = subprocess.run(
        [
            "podman", "run", "--rm", "--network", "none", "--pull", "never",
            "--user", "1000:1000",
            "--volume", f"{archives_dir}:/backups:ro",
            "--volume", f"{restored}:/restored:rw",
            image, "labfleet", "restore", f"/backups/{archive.name}",
            "--data-dir", "/restored/data",
        ],
        env=fleet.env,
        text=True,
        capture_output=True,
        timeout=300,
    )  # fmt: skip
    assert restore.returncode == 0, restore.stdout + restore.stderr
    (database,) = restored.rglob("jupyterhub.sqlite")
    with contextlib.closing(sqlite3.connect(database)) as db:
        names = {row[0] for row in db.execute("SELECT name FROM users")}
    assert "backed-up" in names, names


_RESTRICTED_POD = {
    "securityContext": {
        "runAsNonRoot": True,
        "runAsUser": 1000,
        "runAsGroup": 100,
        "fsGroup": 100,
        "seccompProfile": {"type": "RuntimeDefault"},
    },
    "restartPolicy": "Never",
    "volumes": [{"name": "work", "emptyDir": {}}],
}
_RESTRICTED_CONTAINER = {
    "securityContext": {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}},
    "volumeMounts": [{"name": "work", "mountPath": "/work"}],
}


def _shell(name: str, image: str, script: str) -> dict[str, Any]:
    return {"name": name, "image": image, "command": ["sh", "-c", script], **_RESTRICTED_CONTAINER}


def _create_pod(
    fleet: PodmanFleet, name: str, inits: list[dict[str, Any]], main: dict[str, Any]
) -> None:
    pod = {
        "metadata": {"name": name, "labels": {LABEL_COMPONENT: COMPONENT_USER}},
        "spec": {**_RESTRICTED_POD, "initContainers": inits, "containers": [main]},
    }
    fleet.double.store.create(BY_KIND["v1", "Pod"], "lab", pod, "test")


def _status(fleet: PodmanFleet, name: str) -> dict[str, Any]:
    pod = fleet.double.get("v1", "Pod", name, "lab")
    return (pod or {}).get("status") or {}


def _hub_image(fleet: PodmanFleet) -> str:
    """The hub image the fleet's Deployment names (the user image is its sibling)."""
    return str(fleet.deployments["lab-hub"]["spec"]["template"]["spec"]["containers"][0]["image"])


def _delete_pod(fleet: PodmanFleet, name: str) -> None:
    if fleet.double.get("v1", "Pod", name, "lab") is not None:
        fleet.double.store.delete(BY_KIND["v1", "Pod"], "lab", name)
    wait_for(f"pod {name}'s containers to go", lambda: not fleet.kubelet.container_of("lab", name))


def test_init_containers_run_in_order_on_the_pods_volumes_and_the_log_is_the_containers(
    fleet: PodmanFleet,
) -> None:
    user_image = _hub_image(fleet).replace("labfleet-hub", "labfleet-user")
    _create_pod(
        fleet,
        "init-order",
        [
            _shell("first", user_image, "echo first-ran > /work/order"),
            _shell("second", user_image, "echo second-ran >> /work/order"),
        ],
        _shell("main", user_image, "cat /work/order; echo main-printed-this; sleep 600"),
    )
    try:
        wait_for("the pod to run", lambda: _status(fleet, "init-order").get("phase") == "Running")
        # GET pods/init-order/log: served from what the container really wrote (podman logs)
        client = lightkube.Client(KubeConfig.from_file(str(fleet.kubeconfig)))
        lines = wait_for(
            "the container's lines in the pod log",
            lambda: (
                [x for x in client.log("init-order", namespace="lab") if "main-" in x]
                and list(client.log("init-order", namespace="lab"))
            ),
        )
        assert [line.rstrip("\n") for line in lines] == [
            "first-ran",
            "second-ran",
            "main-printed-this",
        ]
    finally:
        _delete_pod(fleet, "init-order")


def test_a_failing_init_container_leaves_the_pod_pending_and_the_main_one_never_starts(
    fleet: PodmanFleet,
) -> None:
    user_image = _hub_image(fleet).replace("labfleet-hub", "labfleet-user")
    _create_pod(
        fleet,
        "init-fails",
        [
            _shell("fine", user_image, "true"),
            _shell("broken", user_image, "echo cannot migrate >&2; exit 3"),
        ],
        _shell("main", user_image, "sleep 600"),
    )
    try:
        status = wait_for(
            "the init container's failure in the pod status",
            lambda: (s := _status(fleet, "init-fails")).get("initContainerStatuses") and s,
        )
        assert status["phase"] == "Pending"
        fine, broken = status["initContainerStatuses"]
        assert fine["state"]["terminated"]["exitCode"] == 0
        assert broken["state"]["terminated"]["exitCode"] == 3
        assert broken["state"]["terminated"]["reason"] == "Error"
        (main,) = status["containerStatuses"]
        assert main["state"] == {"waiting": {"reason": "PodInitializing"}}
        assert fleet.kubelet.container_of("lab", "init-fails") is None
        assert any("init container broken exited 3" in e for e in fleet.kubelet.errors)
    finally:
        _delete_pod(fleet, "init-fails")


def _wait_ready(fleet: PodmanFleet, user: HubUser) -> None:
    try:
        user.wait_ready(timeout=240)
    except TimeoutError:
        raise AssertionError(_diagnose(fleet)) from None


def _user_container(fleet: PodmanFleet, username: str) -> str:
    container = fleet.kubelet.container_of("lab", f"jupyter-{username}")
    assert container is not None, fleet.kubelet.errors
    return container


def _user_container_or_none(fleet: PodmanFleet, username: str) -> str | None:
    return fleet.kubelet.container_of("lab", f"jupyter-{username}")


def _labfleet_logs(fleet: PodmanFleet, what: str) -> str:
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "labfleet.cli.main",
            "logs",
            what,
            "--cluster",
            "-c",
            str(fleet.config_path),
            "--kubeconfig",
            str(fleet.kubeconfig),
            "-n",
            "500",
        ],
        text=True,
        capture_output=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def test_labfleet_logs_shows_what_the_hub_and_a_users_container_wrote(fleet: PodmanFleet) -> None:
    assert "JupyterHub is now running" in _labfleet_logs(fleet, "hub")
    user = HubUser(fleet.proxy_url, "lovelace")
    try:
        assert user.login(PASSWORD).status_code == 200
        assert user.start_server().status_code in (201, 202)
        _wait_ready(fleet, user)
        out = wait_for(
            "the server's start-up line in labfleet logs",
            lambda: (o := _labfleet_logs(fleet, "lovelace")) and "is running at" in o and o,
        )
        assert "Jupyter Server" in out, out
        # SIGKILL: exit 137, and KubeSpawner's pods say restartPolicy OnFailure, so the
        # kubelet bridge restarts the container (new network namespace, rules again)
        container = _user_container(fleet, "lovelace")
        subprocess.run(["podman", "kill", container], env=fleet.env, check=True)
        notebook = wait_for(
            "the killed container's restart",
            lambda: [
                c
                for c in _status(fleet, "jupyter-lovelace").get("containerStatuses") or []
                if c.get("restartCount") == 1 and "running" in c["state"]
            ],
        )[0]
        assert notebook["lastState"]["terminated"]["exitCode"] == 137
        assert _status(fleet, "jupyter-lovelace")["phase"] == "Running"
        assert user.stop_server().status_code in (202, 204)
        user.wait_stopped(timeout=120)
    finally:
        user.close()


def test_a_user_container_that_exits_is_a_stopped_server_to_the_hub(fleet: PodmanFleet) -> None:
    """A clean exit under OnFailure is not restarted: the pod ends and the hub's poll sees it."""
    user = HubUser(fleet.proxy_url, "hopper")
    api = fleet_api(fleet)
    try:
        assert user.login(PASSWORD).status_code == 200
        assert user.start_server().status_code in (201, 202)
        _wait_ready(fleet, user)
        assert api.get("/users/hopper").json()["servers"]
        container = _user_container(fleet, "hopper")
        # SIGTERM: jupyterhub-singleuser shuts down and exits 0, as on a node's shutdown
        subprocess.run(["podman", "stop", "--time", "20", container], env=fleet.env, check=True)
        ended = wait_for(
            "the pod to end",
            lambda: (
                (s := _status(fleet, "jupyter-hopper")).get("phase") in ("Succeeded", "Failed")
                and s
            ),
        )
        (notebook,) = ended["containerStatuses"]
        assert ended["phase"] == "Succeeded", ended
        assert notebook["state"]["terminated"]["exitCode"] == 0
        assert notebook["restartCount"] == 0
        # JupyterHub polls every server (Spawner.poll_interval, 30 s by default)
        wait_for(
            "the hub to see the server stopped",
            lambda: not api.get("/users/hopper").json()["servers"],
            timeout=150,
        )
        # KubeSpawner deletes a stopped pod, and the bridge its container
        wait_for(
            "the pod to go", lambda: fleet.double.get("v1", "Pod", "jupyter-hopper", "lab") is None
        )
        wait_for(
            "the container to go", lambda: not fleet.kubelet.container_of("lab", "jupyter-hopper")
        )
    finally:
        api.close()
        user.close()


def test_a_services_entry_runs_in_containers_behind_the_hub_login_and_proxy_route(
    fleet: PodmanFleet,
) -> None:
    """The ``services:`` Deployment's pod (app + gate) run by the bridge, reached via the proxy."""
    pod = wait_for(
        "the services: pod to run",
        lambda: [
            p
            for p in fleet.double.list("v1", "Pod", "lab")
            if p["metadata"]["name"].startswith("lab-svc-files")
            and (p.get("status") or {}).get("phase") == "Running"
        ],
    )[0]
    assert fleet.kubelet.container_of("lab", pod["metadata"]["name"]), fleet.kubelet.errors
    url = f"{fleet.proxy_url}/services/files/hello.txt"
    anonymous = wait_for(  # the gate listens a moment after its container starts
        "the gate to answer through the proxy",
        lambda: (
            (r := httpx.get(url, follow_redirects=False, timeout=30)).status_code not in (502, 503)
            and r
        ),
    )
    assert anonymous.status_code in (302, 303), (anonymous.status_code, anonymous.text[:300])
    final = httpx.get(url, follow_redirects=True, timeout=30)
    assert "/hub/login" in str(final.url), final.url
    assert "served-by-the-app" not in final.text
    user = HubUser(fleet.proxy_url, "turing")
    try:
        assert user.login(PASSWORD).status_code == 200
        served = user.http.get("/services/files/hello.txt")  # the OAuth round trip, then the app
        assert served.status_code == 200, (served.status_code, served.text[:500])
        assert served.text.strip() == "served-by-the-app"
    finally:
        user.close()
