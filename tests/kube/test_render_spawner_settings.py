"""LabfleetKubeSpawner from our settings: policy, profile switches, identity, names.

A real KubeSpawner subclass builds real pod manifests; nothing talks to a
cluster (see test_render_helpers for why none is needed).
"""

from __future__ import annotations

from pathlib import Path

import pytest
from tornado import web

from labfleet.auth.github_identity import PosixIdentity
from labfleet.config.load import parse_text
from tests.kube.test_render_helpers import (
    kubeconfig,  # noqa: F401 - fixture
    load_example,
    make_spawner,
    pod_of,
)

GPU_THEN_CPU = """
profiles:
  - {slug: cpu, display_name: CPU, default: true, cpu: 2, memory: 4G}
  - {slug: gpu, display_name: GPU, gpus: 1, cpu: 8, memory: 32G}
kubernetes:
  profiles:
    gpu: {gpu_accelerator: nvidia-l4, environment: {CUDA: "1"}}
"""


async def test_switching_from_gpu_to_cpu_leaves_no_gpu_behind(kubeconfig: Path) -> None:  # noqa: F811
    """KubeSpawner merges dict overrides; we replace them, so nothing leaks across spawns."""
    spawner = make_spawner(parse_text(GPU_THEN_CPU), "alice")
    spawner.user_options = {"profile": "gpu"}
    gpu = await pod_of(spawner)
    container = gpu["spec"]["containers"][0]
    assert container["resources"]["limits"]["nvidia.com/gpu"] == "1"
    assert gpu["spec"]["nodeSelector"] == {"cloud.google.com/gke-accelerator": "nvidia-l4"}

    spawner.user_options = {"profile": "cpu"}
    cpu = await pod_of(spawner)
    container = cpu["spec"]["containers"][0]
    assert "nvidia.com/gpu" not in container["resources"]["limits"]
    assert not cpu["spec"].get("nodeSelector")
    assert not cpu["spec"].get("tolerations")
    assert "CUDA" not in {e["name"] for e in container["env"]}


@pytest.mark.parametrize(
    "options",
    [
        {"profile": "no-such-profile"},
        {"profile": "large"},  # allowed_users: [grace@example.org] only
        {"profile": "standard\n"},  # BAD_INPUTS 56: trailing newline
        {"profile": "standard", "image": "evil.registry/x:y"},  # unknown option
    ],
)
async def test_policy_refuses_forbidden_profiles_on_kubernetes_too(
    kubeconfig: Path,  # noqa: F811
    options: dict[str, str],
) -> None:
    spawner = make_spawner(load_example("google-hardened"), "alice@example.org")
    spawner.user_options = options
    with pytest.raises(web.HTTPError) as refused:
        await pod_of(spawner)
    assert refused.value.status_code in (400, 403)


async def test_allowed_user_gets_the_restricted_profile(kubeconfig: Path) -> None:  # noqa: F811
    spawner = make_spawner(load_example("google-hardened"), "grace@example.org")
    spawner.user_options = {"profile": "large"}
    pod = await pod_of(spawner)
    assert pod["spec"]["containers"][0]["resources"]["limits"]["memory"] == 32 * 10**9


async def test_no_options_means_the_default_profile(kubeconfig: Path) -> None:  # noqa: F811
    spawner = make_spawner(load_example("gke-iap"), "alice@example.com")
    spawner.user_options = {}
    pod = await pod_of(spawner)
    assert pod["spec"]["containers"][0]["image"].endswith("tensorflow-notebook:python-3.11")


async def test_form_lists_only_allowed_profiles(kubeconfig: Path) -> None:  # noqa: F811
    config = load_example("google-hardened")
    alice_form = await make_spawner(config, "alice@example.org").get_options_form()
    grace_form = await make_spawner(config, "grace@example.org").get_options_form()
    assert 'value="large"' not in alice_form  # one profile left: no form at all
    assert 'value="large"' in grace_form and 'value="standard"' in grace_form


async def test_github_identity_becomes_uid_and_groups(kubeconfig: Path) -> None:  # noqa: F811
    spawner = make_spawner(load_example("github-nfs"), "octocat")
    spawner.user_options = {"profile": "small"}
    spawner.labfleet_posix_identity = PosixIdentity(uid=100583, gids=(100001, 100002))
    pod = await pod_of(spawner)
    assert pod["spec"]["containers"][0]["securityContext"]["runAsUser"] == 100583
    assert pod["spec"]["securityContext"]["supplementalGroups"] == [100001, 100002]


async def test_without_identity_the_configured_uid(kubeconfig: Path) -> None:  # noqa: F811
    spawner = make_spawner(load_example("github-nfs"), "octocat")
    spawner.user_options = {"profile": "small"}
    pod = await pod_of(spawner)
    assert pod["spec"]["containers"][0]["securityContext"]["runAsUser"] == 1000


async def test_per_user_namespace_objects_are_expanded_for_the_user(
    kubeconfig: Path,  # noqa: F811
) -> None:
    config = parse_text(
        "name: datalab\nkubernetes: {namespace: datalab, users: {namespaces: per-user,"
        " per_user: {quota_cpu: 8, quota_memory: 32G, quota_pods: 2}}}"
    )
    spawner = make_spawner(config, "Grace@Example.org")
    objects = spawner._expand_all(spawner.labfleet_user_namespace_objects)
    namespaces = {o["metadata"]["namespace"] for o in objects}
    assert namespaces == {spawner.namespace}
    assert spawner.namespace.startswith("datalab-grace-example")
    kinds = [o["kind"] for o in objects]
    assert kinds == ["ServiceAccount", "NetworkPolicy", "ResourceQuota", "LimitRange"]
    assert spawner.service_account == "jupyter-user"
    assert spawner.user_namespace_labels["labfleet.io/user-namespace-of"] == "datalab"
