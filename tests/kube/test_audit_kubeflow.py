"""Audit: ``examples/kubeflow-form.yaml`` gave every named server of a user the same RWO claim.

Kubeflow's notebooks each have their own workspace volume; with one ReadWriteOnce claim
per user, a second named server scheduled on another node waits forever on
"Multi-Attach error". The example also did not follow Kubeflow's JupyterHub path (try it
with the dummy authenticator, then switch to GitHub OAuth on a LoadBalancer).
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from labfleet.config.load import parse_text
from labfleet.kube.access import how_to_reach
from labfleet.kube.checks import kube_warnings
from tests.kube.test_render_helpers import (
    REPO,
    kubeconfig,  # noqa: F401 - fixture
    kubespawner_pod,
    load_example,
)

EXAMPLE = REPO / "examples" / "kubeflow-form.yaml"
NAMED_RWO = """
name: lab
auth:
  kind: dummy
servers:
  named_servers: true
kubernetes:
  namespace: lab
  storage:
    kind: pvc
"""


def _multi_attach(text: str) -> list[str]:
    return [w for w in kube_warnings(parse_text(text)) if "Multi-Attach" in w]


def test_named_servers_on_one_rwo_claim_are_caught() -> None:
    warnings = _multi_attach(NAMED_RWO)
    assert len(warnings) == 1  # one warning for the shared storage, not one per profile
    assert "claim_per: server" in warnings[0]


def test_per_server_claims_or_rwx_are_fine() -> None:
    assert _multi_attach(NAMED_RWO + "    claim_per: server\n") == []
    assert _multi_attach(NAMED_RWO + "    access_mode: ReadWriteMany\n") == []
    assert _multi_attach(NAMED_RWO.replace("named_servers: true", "named_servers: false")) == []


async def test_each_named_server_of_the_example_gets_its_own_claim(kubeconfig: Path) -> None:  # noqa: F811
    config = load_example("kubeflow-form")
    assert config.servers.named_servers
    assert _multi_attach(EXAMPLE.read_text()) == []
    claims = set()
    for server in ("", "exp-1", "exp-2"):
        pod = await kubespawner_pod(config, "alice", "tf-cpu", server)
        volume = next(v for v in pod["spec"]["volumes"] if v["name"] == "home")
        claims.add(volume["persistentVolumeClaim"]["claimName"])
    assert claims == {"workspace-alice", "workspace-alice--exp-1", "workspace-alice--exp-2"}


def test_example_signs_in_with_github_on_a_tls_load_balancer() -> None:
    config = load_example("kubeflow-form")
    assert config.auth.kind == "github"
    assert config.kubernetes.access.kind == "load-balancer"
    assert config.kubernetes.access.load_balancer.https
    assert how_to_reach(config).startswith("open https://")
    assert [w for w in kube_warnings(config) if "plain HTTP" in w] == []


def _step1(text: str, part: str) -> str:
    """Swap the live (step 2) block of ``part`` for the commented step 1 block."""
    found = re.search(
        rf"( *)# >>> step 1 {part}\n(.*?)\1# <<< step 1 {part}\n(.*?)\1# <<< step 2 {part}\n",
        text,
        re.S,
    )
    assert found, f"the example marks step 1 and step 2 of {part}"
    indent = found.group(1)
    step1 = "".join(indent + line[len(indent) + 2 :] + "\n" for line in found.group(2).splitlines())
    return text.replace(found.group(3), step1, 1)


def test_the_documented_first_step_is_dummy_sign_in_through_a_port_forward() -> None:
    """The commented step 1 blocks, put in place of the live ones, are a valid config."""
    text = _step1(_step1(EXAMPLE.read_text(), "auth"), "access")
    config = parse_text(text)
    assert config.auth.kind == "dummy"
    assert config.kubernetes.access.kind == "cluster-ip"
    assert how_to_reach(config).startswith("run: kubectl")


def test_labfleet_check_catches_the_shared_claim(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from labfleet.cli.main import main

    path = tmp_path / "named.yaml"
    path.write_text(NAMED_RWO)
    assert main(["check", "--no-machine", str(path)]) == 0
    assert "Multi-Attach" in capsys.readouterr().err
    assert main(["check", "--no-machine", str(EXAMPLE)]) == 0
    assert "Multi-Attach" not in capsys.readouterr().err
