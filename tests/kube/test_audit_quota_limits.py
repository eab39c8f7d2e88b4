"""Audit: a per-user ResourceQuota never rejects the pods of profiles that set no limits.

A quota on ``limits.cpu``/``limits.memory`` makes the API server refuse every pod whose
containers do not state those limits. Before the fix ``per_user.quota_cpu`` with a profile
without ``cpu:`` passed ``check`` and then every spawn failed with "failed quota: must
specify limits.cpu". Now each user's namespace also gets a LimitRange whose defaults fill
what a profile leaves open (the user's quota shared by ``quota_pods``), and ``check``
refuses a profile that asks for more than the whole quota. The pod is the one KubeSpawner
itself builds from our settings; the API double admits it as a cluster would.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from labfleet.config.load import ConfigError, parse_text
from labfleet.kube.user_namespace import user_namespace_name, user_namespace_objects
from tests.kube.double import running_double
from tests.kube.double.kinds import BY_KIND
from tests.kube.double.store import ApiStatus
from tests.kube.test_render_helpers import kubeconfig, kubespawner_pod  # noqa: F401 - fixture

CONFIG = """
name: lab
profiles:
  - {slug: open, display_name: No limits, default: true}
  - {slug: capped, display_name: Capped, cpu: 1, memory: 2G}
kubernetes:
  namespace: lab
  users:
    namespaces: per-user
    per_user: {quota_cpu: 4, quota_memory: 16G, quota_pods: 2}
"""


@pytest.mark.parametrize("profile", ["open", "capped"])
async def test_quota_admits_pods_of_profiles_without_limits(
    profile: str,
    kubeconfig: Path,  # noqa: F811
) -> None:
    config = parse_text(CONFIG)
    pod = await kubespawner_pod(config, "alice", profile)
    namespace = user_namespace_name(config, "alice")
    with running_double() as double:
        store = double.store
        store.create(BY_KIND["v1", "Namespace"], "", {"metadata": {"name": namespace}}, "hub")
        for obj in user_namespace_objects(config, "alice"):
            store.create(BY_KIND[obj["apiVersion"], obj["kind"]], namespace, obj, "hub")
        try:
            admitted = store.create(BY_KIND["v1", "Pod"], namespace, pod, "hub")
        except ApiStatus as refused:
            pytest.fail(f"the API refused the user's pod: {refused}")
    limits = admitted["spec"]["containers"][0]["resources"]["limits"]
    if profile == "open":  # the LimitRange's share of the quota: 4 CPUs / 2 pods
        assert limits["cpu"] == "2" and limits["memory"] == "8G"
    else:  # the profile's own limits, untouched
        assert limits == pod["spec"]["containers"][0]["resources"]["limits"]


def test_the_double_refuses_what_a_cluster_refuses() -> None:
    """Without the LimitRange (the code before the fix) the same pod is refused."""
    config = parse_text(CONFIG)
    namespace = user_namespace_name(config, "alice")
    quota = next(o for o in user_namespace_objects(config, "alice") if o["kind"] == "ResourceQuota")
    pod = {
        "metadata": {"name": "jupyter-alice"},
        "spec": {"containers": [{"name": "notebook", "image": "example/nb:1"}]},
    }
    with running_double() as double:
        store = double.store
        store.create(BY_KIND["v1", "Namespace"], "", {"metadata": {"name": namespace}}, "hub")
        store.create(BY_KIND["v1", "ResourceQuota"], namespace, quota, "hub")
        with pytest.raises(ApiStatus, match=r"must specify limits\.cpu for: notebook"):
            store.create(BY_KIND["v1", "Pod"], namespace, pod, "hub")


def test_check_refuses_a_profile_bigger_than_the_quota() -> None:
    too_big = CONFIG.replace("cpu: 1, memory: 2G", "cpu: 8, memory: 2G")
    with pytest.raises(ConfigError, match="quota_cpu"):
        parse_text(too_big)
