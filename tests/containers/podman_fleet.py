"""labfleet's hub and proxy, as ``labfleet apply`` puts them in a cluster, run in a podman pod.

The order is a cluster's:

1. ``labfleet render`` names the Services; a podman pod is created whose ``/etc/hosts`` maps
   them to itself (hub and proxy share the pod; there is no cluster DNS here).
2. The Kubernetes API double (tests/kube/double, the one stand-in: no API server can run
   here) listens with TLS on the podman network's gateway, so containers reach it.
3. ``labfleet apply`` (the real CLI, with a kubeconfig) applies the fleet to the double.
4. The hub and proxy Deployments, ConfigMap and Secret *as the double holds them* are
   translated into ``podman run`` in that pod (tests/containers/kube_to_podman.py); the
   hub gets the service-account token and CA a kubelet mounts, so KubeSpawner inside it
   talks to the double over the network with kubernetes_asyncio's in-cluster config.
   Their init containers (the hub's ``upgrade-db``: ``labfleet db upgrade``) run first,
   in the pod, to completion, on the same volumes; one that fails stops the fixture.
5. The rendered probes are probed from here (the node's view: the pod IP and the probe's
   port and path); once they pass, the double reports the hub and proxy pods ready with the
   pod's IP, and ``labfleet apply`` finishes its rollout wait.

Users' server pods are run by :class:`~tests.containers.podman_kubelet.PodmanKubelet`.
"""

from __future__ import annotations

import contextlib
import http.client
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from tests.containers.api_tls import api_certificate
from tests.containers.kube_to_podman import (
    ClusterAccess,
    http_probe,
    service_hosts,
    tcp_probe,
    translate,
)
from tests.containers.podman_kubelet import PodmanKubelet, write_files
from tests.kube.double import KubeDouble
from tests.kube.double.kinds import BY_KIND

NAMESPACE = "lab"
PASSWORD = "a-password-for-the-dummy-authenticator"
NETWORK = "podman"


def fleet_yaml(hub_image: str, user_image: str) -> str:
    return f"""\
name: lab
auth:
  kind: dummy
  dummy:
    password: {PASSWORD}
kubernetes:
  namespace: {NAMESPACE}
  hub:
    image: {hub_image}
  users:
    image: {user_image}
  backup:
    keep: 2
servers:
  # CI here is 2 shared cores: a server may need more than the default 60 s to answer
  start_timeout: 300
  http_timeout: 180
services:
  # a services: entry beside the hub: a static file server behind the hub's login
  - name: files
    image: {user_image}
    port: 8080
    url_prefix: /
    command:
      - sh
      - -c
      - >-
        mkdir -p /tmp/www && echo served-by-the-app > /tmp/www/hello.txt && cd /tmp/www
        && exec python3 -m http.server 8080 --bind 127.0.0.1
"""


@dataclass
class PodmanFleet:
    config_path: Path
    kubeconfig: Path
    double: KubeDouble
    kubelet: PodmanKubelet
    env: dict[str, str]
    pod: str
    ip: str
    deployments: dict[str, dict[str, Any]]
    #: podman container of each init container that ran -> (exit code, what it printed)
    inits: dict[str, tuple[int, str]]
    #: where the claims are on this machine, one directory per claim name
    claims_dir: Path
    #: the fixture's own directory (pods' volumes, kubeconfig, CA)
    workdir: Path

    @property
    def proxy_url(self) -> str:
        return f"http://{self.ip}:8000"

    def container(self, deployment: str) -> str:
        spec = self.deployments[deployment]["spec"]["template"]["spec"]
        return f"{self.pod}-{spec['containers'][0]['name']}"

    def logs(self, container: str) -> str:
        result = subprocess.run(
            ["podman", "logs", container], env=self.env, text=True, capture_output=True
        )
        return (result.stdout + result.stderr)[-6000:]


def _podman(env: dict[str, str], *args: str) -> str:
    result = subprocess.run(["podman", *args], env=env, text=True, capture_output=True)
    if result.returncode != 0:
        raise RuntimeError(f"podman {' '.join(args[:3])}: {result.stderr.strip()}")
    return result.stdout.strip()


def http_ok(ip: str, port: int, path: str) -> bool:
    connection = http.client.HTTPConnection(ip, port, timeout=3)
    try:
        connection.request("GET", path)
        return connection.getresponse().status == 200
    except OSError:
        return False
    finally:
        connection.close()


def tcp_ok(ip: str, port: int) -> bool:
    try:
        socket.create_connection((ip, port), timeout=3).close()
    except OSError:
        return False
    return True


def probe_budget(container: dict[str, Any], which: str) -> float:
    probe = container.get(which) or {}
    return float(probe.get("periodSeconds", 10) * probe.get("failureThreshold", 3))


def wait_probes(fleet: PodmanFleet) -> None:
    """Every rendered probe of both containers, from the node's side (the pod IP)."""
    for name, deployment in fleet.deployments.items():
        container = deployment["spec"]["template"]["spec"]["containers"][0]
        deadline = time.monotonic() + probe_budget(container, "startupProbe") + 60
        for which in ("startupProbe", "readinessProbe", "livenessProbe"):
            get, port = http_probe(container, which), tcp_probe(container, which)
            while True:
                ok = http_ok(fleet.ip, get[1], get[0]) if get else None
                if get is None and port is not None:
                    ok = tcp_ok(fleet.ip, port)
                if ok is None or ok:
                    break
                if time.monotonic() > deadline:
                    raise AssertionError(
                        f"{name}: {which} never passed\n" + fleet.logs(fleet.container(name))
                    )
                time.sleep(0.5)


@contextlib.contextmanager
def podman_fleet(
    env: dict[str, str], images: dict[str, str], workdir: Path
) -> Iterator[PodmanFleet]:
    workdir.mkdir(parents=True, exist_ok=True)
    workdir.chmod(0o755)
    config_path = workdir / "labfleet.yaml"
    config_path.write_text(fleet_yaml(images["hub"], images["user"]))
    pod = f"lf-test-{uuid.uuid4().hex[:6]}"
    rendered = subprocess.run(
        [sys.executable, "-m", "labfleet.cli.main", "render", "-c", str(config_path)],
        text=True,
        capture_output=True,
        check=True,
    )
    services = [o for o in yaml.safe_load_all(rendered.stdout) if o and o["kind"] == "Service"]
    with contextlib.ExitStack() as stack:
        _podman(env, "pod", "create", "--name", pod, "--network", NETWORK, *service_hosts(services))
        stack.callback(_podman, env, "pod", "rm", "--force", "--time", "5", pod)
        _podman(env, "pod", "start", pod)
        infra = _podman(env, "pod", "inspect", "--format", "{{.InfraContainerID}}", pod)
        ip = _podman(
            env,
            "inspect",
            "--format",
            "{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}",
            infra,
        )
        gateway = _podman(
            env, "network", "inspect", "--format", "{{range .Subnets}}{{.Gateway}}{{end}}", NETWORK
        )
        cert = api_certificate(gateway)
        double = KubeDouble(host=gateway, ssl_context=cert.server_context(workdir)).start()
        stack.callback(double.stop)
        (workdir / "ca.crt").write_bytes(cert.cert_pem)
        kubeconfig = double.write_kubeconfig(
            workdir / "kubeconfig", namespace=NAMESPACE, ca_file=workdir / "ca.crt"
        )
        cluster = ClusterAccess(
            host=gateway, port=double.port, ca_pem=cert.cert_pem, token="token-of-sa-lab-hub"
        )
        kubelet = PodmanKubelet(
            env=env,
            store=double.store,
            workdir=workdir / "pods",
            network=NETWORK,
            hosts=service_hosts(services, ip),
            prefix=pod,
            cluster=cluster,
            pod_log=double.write_pod_log,
            # hub and proxy reach a services: entry's gate by its Service name
            hosts_files=[Path(_podman(env, "inspect", "--format", "{{.HostsPath}}", infra))],
        ).start()
        stack.callback(kubelet.stop)
        double.controller.kubelet = kubelet

        apply = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "labfleet.cli.main",
                "apply",
                "-c",
                str(config_path),
                "--kubeconfig",
                str(kubeconfig),
                "--timeout",
                "400",
            ],
            text=True,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        stack.callback(_reap, apply)
        deployments = _applied_deployments(double, apply)
        secrets, _ = double.store.list(BY_KIND["v1", "Secret"], NAMESPACE)
        maps, _ = double.store.list(BY_KIND["v1", "ConfigMap"], NAMESPACE)
        inits: dict[str, tuple[int, str]] = {}
        for deployment in deployments.values():
            translated = translate(
                deployment,
                [*secrets, *maps],
                pod=pod,
                workdir=workdir / "platform",
                cluster=cluster,
                claims_dir=workdir / "claims",
            )
            write_files(translated.files, translated.dirs)
            for init, init_argv in translated.init:
                argv = [*init_argv[:2], "--pull", "never", *init_argv[2:]]
                result = subprocess.run(argv, env=env, text=True, capture_output=True)
                inits[argv[argv.index("--name") + 1]] = (
                    result.returncode,
                    result.stdout + result.stderr,
                )
                assert result.returncode == 0, f"init container {init}: {result.stderr}"
            argv = [*translated.argv[:2], "--pull", "never", *translated.argv[2:]]
            result = subprocess.run(argv, env=env, text=True, capture_output=True)
            assert result.returncode == 0, result.stderr
            container = deployment["spec"]["template"]["spec"]["containers"][0]["name"]
            kubelet.platform_containers[container] = f"{pod}-{container}"
        fleet = PodmanFleet(
            config_path,
            kubeconfig,
            double,
            kubelet,
            env,
            pod,
            ip,
            deployments,
            inits,
            workdir / "claims",
            workdir,
        )
        wait_probes(fleet)
        kubelet.platform_ip = ip
        out, _ = apply.communicate(timeout=400)
        assert apply.returncode == 0, out
        yield fleet


def _reap(process: subprocess.Popen[str]) -> None:
    if process.poll() is None:
        process.kill()
    process.wait()


def _applied_deployments(double: KubeDouble, apply: subprocess.Popen[str]) -> dict[str, Any]:
    """The hub and proxy Deployments, once ``labfleet apply`` has put them in the double."""
    kind = BY_KIND["apps/v1", "Deployment"]
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        items, _ = double.store.list(kind, NAMESPACE)
        found = {d["metadata"]["name"]: d for d in items}
        if {"lab-hub", "lab-proxy"} <= found.keys():
            return {"lab-hub": found["lab-hub"], "lab-proxy": found["lab-proxy"]}
        if apply.poll() is not None:
            out = apply.stdout.read() if apply.stdout else ""
            raise AssertionError(f"labfleet apply exited before applying the fleet:\n{out}")
        time.sleep(0.2)
    raise AssertionError("labfleet apply did not create the hub and proxy Deployments")
