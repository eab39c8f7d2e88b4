"""``labfleet apply | plan | status | destroy`` as a person runs them, against the API double.

The CLI runs as a real subprocess with ``--kubeconfig`` pointing at the
in-process Kubernetes API double (no cluster runs here).
"""

from __future__ import annotations

import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from lightkube import Client
from lightkube.config.kubeconfig import KubeConfig
from lightkube.types import PatchType

from labfleet.kube.apply.resources import resource_class
from tests.kube.double import KubeDouble, running_double

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "minimal.yaml"
NS = "labfleet"
HUB = f"/apis/apps/v1/namespaces/{NS}/deployments/labfleet-hub"


def labfleet(*args: str, kubeconfig: Path) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "labfleet.cli.main", *args]
    command += ["-c", str(EXAMPLE), "--kubeconfig", str(kubeconfig)]
    return subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)


@pytest.fixture
def double() -> Iterator[KubeDouble]:
    with running_double() as running:
        yield running


def start_pods_once_polled(double: KubeDouble) -> threading.Thread:
    """Hold pods back until the CLI has polled the hub Deployment once.

    So the first progress line is deterministically ``0/1 ready``; then the
    double's kubelet starts the pods and the rollout completes.
    """
    double.controller.pods_start = False

    def release() -> None:
        while not double.controller.pods_start:
            polled = [p for m, p in double.server.requests if m == "GET" and p.startswith(HUB)]
            inventory = double.get("v1", "ConfigMap", "labfleet-inventory", NS)
            if inventory is not None and len(polled) >= 2:  # one GET by apply, one by the wait
                double.controller.pods_start = True
            threading.Event().wait(0.05)

    thread = threading.Thread(target=release, daemon=True)
    thread.start()
    return thread


def test_cli_apply_plan_status_destroy(double: KubeDouble, tmp_path: Path) -> None:
    kubeconfig = double.write_kubeconfig(tmp_path / "kubeconfig")
    start_pods_once_polled(double)
    applied = labfleet("apply", "--timeout", "60", kubeconfig=kubeconfig)
    assert applied.returncode == 0, applied.stderr
    out = applied.stdout
    assert "deployment/labfleet-hub -n labfleet: created" in out
    assert "waiting for deployment/labfleet-hub: 0/1 ready (" in out
    assert "deployment/labfleet-hub: 1/1 ready" in out
    assert "rollout complete" in out
    assert "kubectl -n labfleet port-forward service/labfleet-proxy-public 8000:80" in out
    secret = double.get("v1", "Secret", "labfleet-hub-secret", NS)

    planned = labfleet("plan", kubeconfig=kubeconfig)
    assert planned.returncode == 0, planned.stderr
    assert "no changes" in planned.stdout

    again = labfleet("apply", "--no-wait", kubeconfig=kubeconfig)
    assert again.returncode == 0, again.stderr
    assert "0 created, 0 configured" in again.stdout
    assert double.get("v1", "Secret", "labfleet-hub-secret", NS) == secret

    shown = labfleet("status", kubeconfig=kubeconfig)
    assert shown.returncode == 0, shown.stderr
    assert "deployment/labfleet-hub: 1/1 ready" in shown.stdout
    assert "users' servers: 0" in shown.stdout

    # Someone scales the hub by hand: apply refuses to fight over the field.
    Client(KubeConfig.from_file(str(kubeconfig)).get(), field_manager="kubectl-scale").patch(
        resource_class("apps/v1", "Deployment"),
        "labfleet-hub",
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": "labfleet-hub"},
            "spec": {"replicas": 2},
        },
        namespace=NS,
        patch_type=PatchType.APPLY,
        force=True,
    )
    refused = labfleet("apply", "--no-wait", kubeconfig=kubeconfig)
    assert refused.returncode == 1
    assert "--force-conflicts" in refused.stderr and ".spec.replicas" in refused.stderr
    forced = labfleet("apply", "--no-wait", "--force-conflicts", kubeconfig=kubeconfig)
    assert forced.returncode == 0, forced.stderr
    hub = double.get("apps/v1", "Deployment", "labfleet-hub", NS)
    assert hub is not None and hub["spec"]["replicas"] == 1

    unconfirmed = labfleet("destroy", kubeconfig=kubeconfig)
    assert unconfirmed.returncode == 2
    assert double.get("apps/v1", "Deployment", "labfleet-hub", NS) is not None
    destroyed = labfleet("destroy", "--yes", kubeconfig=kubeconfig)
    assert destroyed.returncode == 0, destroyed.stderr
    assert "kept persistentvolumeclaim/labfleet-hub-db" in destroyed.stdout
    assert double.get("apps/v1", "Deployment", "labfleet-hub", NS) is None
    assert double.get("v1", "PersistentVolumeClaim", "labfleet-hub-db", NS) is not None
