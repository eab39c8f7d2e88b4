"""``labfleet render`` as a real process: stdout, ``-o DIR``, and exit 2 on a bad config."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import yaml

from tests.kube.test_render_helpers import REPO

LABFLEET = [sys.executable, "-m", "labfleet.cli.main"]


def run(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*LABFLEET, *args], capture_output=True, text=True, timeout=120, cwd=cwd, check=False
    )


def test_render_to_stdout_is_multi_document_yaml() -> None:
    result = run("render", "-c", str(REPO / "examples" / "gke-iap.yaml"))
    assert result.returncode == 0, result.stderr
    documents = [d for d in yaml.safe_load_all(result.stdout) if d]
    kinds = {d["kind"] for d in documents}
    assert {"Deployment", "Service", "Secret", "BackendConfig", "Ingress"} <= kinds
    assert "ConfigMap" not in kinds  # the hub's config may hold secrets: it is a Secret
    assert all(d["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "labfleet"
               for d in documents)  # fmt: skip


def test_render_to_directory_writes_one_file_per_object(tmp_path: Path) -> None:
    out = tmp_path / "out"
    (out).mkdir()
    (out / "99-stale-object.yaml").write_text("kind: Old\n")
    (out / "README.md").write_text("mine\n")
    result = run("render", "-c", str(REPO / "examples" / "minimal.yaml"), "-o", str(out))
    assert result.returncode == 0, result.stderr
    files = sorted(out.glob("*.yaml"))
    assert not (out / "99-stale-object.yaml").exists()  # a previous render is replaced
    assert (out / "README.md").read_text() == "mine\n"  # other files are left alone
    for path in files:
        documents = list(yaml.safe_load_all(path.read_text()))
        assert len(documents) == 1, path
        obj = documents[0]
        assert path.name.endswith(f"-{obj['kind'].lower()}-{obj['metadata']['name']}.yaml")
    assert files[0].name == "00-namespace-labfleet.yaml"


def test_two_renders_differ_only_in_generated_secrets() -> None:
    path = str(REPO / "examples" / "minimal.yaml")
    first = [d for d in yaml.safe_load_all(run("render", "-c", path).stdout) if d]
    second = [d for d in yaml.safe_load_all(run("render", "-c", path).stdout) if d]
    differing = [a["kind"] for a, b in zip(first, second, strict=True) if a != b]
    assert differing == ["Secret"]


def test_invalid_config_exits_2_with_the_key_path(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("kubernetes:\n  acess:\n    kind: load-balancer\n")
    out = tmp_path / "out"
    result = run("render", "-c", str(bad), "-o", str(out))
    assert result.returncode == 2
    assert "kubernetes.acess: unknown key; did you mean 'access'?" in result.stderr
    assert not out.exists()
    assert result.stdout == ""


def test_cross_checked_profile_reference_exits_2(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("kubernetes:\n  profiles:\n    gpu: {gpu_accelerator: nvidia-l4}\n")
    result = run("render", "-c", str(bad))
    assert result.returncode == 2
    assert "profiles.gpu" in result.stderr


def test_missing_config_file_exits_2(tmp_path: Path) -> None:
    result = run("render", "-c", str(tmp_path / "nope.yaml"))
    assert result.returncode == 2
    assert "file not found" in result.stderr


def test_render_needs_a_config() -> None:
    result = run("render")
    assert result.returncode == 2
    assert "-c/--config" in result.stderr


# -- the cluster commands (end to end against the API double: tests/kube/test_apply_cli.py)


def test_unreachable_cluster_is_a_plain_error(tmp_path: Path) -> None:
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(
        "apiVersion: v1\nkind: Config\ncurrent-context: x\n"
        "clusters: [{name: x, cluster: {server: 'http://127.0.0.1:9'}}]\n"
        "contexts: [{name: x, context: {cluster: x, user: u}}]\nusers: [{name: u, user: {}}]\n"
    )
    result = run(
        "plan", "-c", str(REPO / "examples" / "minimal.yaml"), "--kubeconfig", str(kubeconfig)
    )
    assert result.returncode == 1
    assert "cannot reach the Kubernetes API" in result.stderr
    assert "Traceback" not in result.stderr
