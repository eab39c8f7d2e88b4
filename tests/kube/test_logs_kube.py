"""``labfleet logs [USER|hub|proxy] [-f]`` on Kubernetes reads pod logs through the API (issue 17).

Before, it only printed a ``kubectl logs`` hint and exited 2. The Kubernetes API here is
the double (no cluster runs on these machines); the fleet is applied to it by the real
apply engine, so the hub and proxy pods are the ones the Deployments made, found by
their labels. No container runs behind the double: the test writes what a container
printed with ``write_pod_log`` and the double serves it from its log endpoint.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from labfleet.cli.main import main
from labfleet.config.load import parse_text
from labfleet.kube.apply import Cluster, apply, connect
from labfleet.kube.render import render_objects
from tests.kube.double import KubeDouble, running_double
from tests.kube.test_render_helpers import FIXED_SECRETS

NS = "lab"
CONFIG = f"""
name: lab
auth:
  kind: dummy
kubernetes:
  namespace: {NS}
"""
RESTRICTED = {
    "runAsNonRoot": True,
    "runAsUser": 1000,
    "seccompProfile": {"type": "RuntimeDefault"},
}


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[KubeDouble, Path, Path]]:
    """The double with the fleet applied; (double, kubeconfig, labfleet.yaml)."""
    tmp = tmp_path_factory.mktemp("logs")
    config_file = tmp / "labfleet.yaml"
    config_file.write_text(CONFIG)
    with running_double() as double:
        kubeconfig = double.write_kubeconfig(tmp / "kubeconfig", namespace=NS)
        objects = render_objects(parse_text(CONFIG), FIXED_SECRETS)
        result = apply(Cluster(connect(kubeconfig)), objects, poll=0.1, timeout=30)
        assert result.rollout is not None and result.rollout.ready
        yield double, kubeconfig, config_file


def _pod_of(double: KubeDouble, component: str) -> str:
    pods = double.list("v1", "Pod", NS, **{"app.kubernetes.io/component": component})
    assert len(pods) == 1
    name: str = pods[0]["metadata"]["name"]
    return name


def _logs(fleet: tuple[KubeDouble, Path, Path], *args: str) -> list[str]:
    _, kubeconfig, config_file = fleet
    return ["logs", *args, "--kubeconfig", str(kubeconfig), "-c", str(config_file)]


def _user_pod(double: KubeDouble, kubeconfig: Path, name: str) -> None:
    from lightkube.resources.core_v1 import Pod

    pod: dict[str, Any] = {
        "metadata": {"name": name, "namespace": NS},
        "spec": {
            "securityContext": RESTRICTED,
            "containers": [
                {
                    "name": "notebook",
                    "image": "quay.io/jupyter/minimal-notebook:python-3.12",
                    "securityContext": {
                        "allowPrivilegeEscalation": False,
                        "capabilities": {"drop": ["ALL"]},
                    },
                }
            ],
        },
    }
    connect(kubeconfig).create(Pod.from_dict(pod))


def test_hub_log_tail(
    fleet: tuple[KubeDouble, Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    double = fleet[0]
    hub = _pod_of(double, "hub")
    double.write_pod_log(NS, hub, "hub", "[I hub] starting", "[I hub] ready", "[W hub] slow spawn")
    assert main(_logs(fleet, "hub", "-n", "2")) == 0
    assert capsys.readouterr().out.splitlines() == ["[I hub] ready", "[W hub] slow spawn"]


def test_proxy_log_is_the_proxy_pods(
    fleet: tuple[KubeDouble, Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    double = fleet[0]
    double.write_pod_log(NS, _pod_of(double, "proxy"), "proxy", "proxy listening on :8000")
    assert main(_logs(fleet, "proxy")) == 0
    assert capsys.readouterr().out.splitlines() == ["proxy listening on :8000"]


def test_a_users_server_log_and_a_user_without_one(
    fleet: tuple[KubeDouble, Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    double, kubeconfig, _ = fleet
    _user_pod(double, kubeconfig, "jupyter-alice--exp")
    double.write_pod_log(NS, "jupyter-alice--exp", "notebook", "Jupyter Server is running")
    assert main(_logs(fleet, "alice/exp")) == 0
    assert capsys.readouterr().out.splitlines() == ["Jupyter Server is running"]

    assert main(_logs(fleet, "bob")) != 0
    err = capsys.readouterr().err
    assert "jupyter-bob" in err and "no running server" in err


def test_follow_prints_new_lines_until_the_pod_goes(fleet: tuple[KubeDouble, Path, Path]) -> None:
    double, kubeconfig, _ = fleet
    _user_pod(double, kubeconfig, "jupyter-carol")
    double.write_pod_log(NS, "jupyter-carol", "notebook", "first")
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    cmd = [sys.executable, "-m", "labfleet.cli.main", *_logs(fleet, "carol", "-f")]
    with subprocess.Popen(
        cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env
    ) as proc:
        try:
            assert proc.stdout is not None
            assert proc.stdout.readline() == "first\n"
            double.write_pod_log(NS, "jupyter-carol", "notebook", "second")
            assert proc.stdout.readline() == "second\n"
            from lightkube.resources.core_v1 import Pod

            connect(kubeconfig).delete(Pod, "jupyter-carol", namespace=NS)
            assert proc.wait(timeout=20) == 0
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
