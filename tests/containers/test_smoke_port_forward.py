"""``labfleet smoke`` without ``--url``: in through the real ``kubectl port-forward``.

The fleet is ``access.kind: cluster-ip`` (the default), so smoke starts ``kubectl
port-forward service/lab-proxy-public :80`` as a user would. Real: kubectl, its SPDY
streams, labfleet-proxy and the hub in their podman containers, the user's container.
Doubles, named: the Kubernetes API (tests/kube/double, whose ``pods/NAME/portforward``
dials the proxy pod's podIP, the podman pod's address) and the kubelet
(tests/containers/podman_kubelet.py).
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.containers.podman_fleet import PodmanFleet

#: "  ok      1.2s  step name  detail" (labfleet.kube.smoke.plan.report_line)
REPORT_LINE = re.compile(r"^  (ok|FAIL|skip)\s+[\d.]+s  (.+?)(?:  (.*))?$")

pytestmark = [
    pytest.mark.integration,
    pytest.mark.port_forward_fleet,
    # a second podman fleet costs minutes the default run has not got: -m selects it
    pytest.mark.skipif(
        "'port_forward_fleet' not in (config.option.markexpr or '')",
        reason="a fleet of its own: select with -m port_forward_fleet",
    ),
    pytest.mark.timeout(900),
    pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl is not installed"),
]


def test_labfleet_smoke_reaches_the_hub_through_kubectl_port_forward(fleet: PodmanFleet) -> None:
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
        "--no-neighbour",
    ]
    result = subprocess.run(argv, text=True, capture_output=True, timeout=600, check=False)
    out = result.stdout
    print(out)  # the report, for whoever reads the test log
    lines = {
        m.group(2): m.group(1) + " " + (m.group(3) or "")
        for m in map(REPORT_LINE.match, out.splitlines())
        if m
    }
    access = lines.get("find the access path", "")
    assert access.startswith("ok "), f"{out}\n{result.stderr}"
    assert "through kubectl port-forward service/lab-proxy-public" in access, access
    for step in (
        "reach the hub",
        "create temporary users",
        "start their servers",
        "run code in a kernel",
        "boundary: the hub API without a token",
        "remove what the smoke test created",
    ):
        assert lines.get(step, "").startswith("ok "), f"{step}:\n{out}\n{_diagnose(fleet)}"
    assert result.returncode == 0, f"{out}\n{result.stderr}"
    # The hub was reached through the double's port-forward to the proxy pod, by kubectl
    # (a POST for SPDY, a GET for kubectl 1.31+'s WebSocket tunnel) ...
    forwarded = [
        p
        for _, p in fleet.double.server.requests
        if re.search(r"/pods/lab-proxy-[^/]+/portforward", p)
    ]
    assert forwarded, fleet.double.server.requests[-20:]
    # ... and smoke stopped that kubectl (by its pid) before it exited.
    pid = int(re.search(r"\(pid (\d+)\)", access).group(1))  # type: ignore[union-attr]
    assert not Path(f"/proc/{pid}").exists(), f"kubectl port-forward (pid {pid}) is still there"


def _diagnose(fleet: PodmanFleet) -> str:
    """The end of the hub's log and what the kubelet bridge saw (a failed spawn is there)."""
    hub_log = fleet.logs(fleet.container("lab-hub")).splitlines()[-60:]
    return f"kubelet errors: {fleet.kubelet.errors}\nhub log (end):\n" + "\n".join(hub_log)
