"""Kubernetes names derived from usernames: valid, distinct, and only from labfleet.naming.

Names come from a real KubeSpawner (our subclass) configured by our
settings, so this checks what a cluster would really receive
(CVE-2020-15110; BAD_INPUTS 36-38).
"""

from __future__ import annotations

import itertools
import re
from pathlib import Path
from typing import Any

import pytest

from labfleet.config.load import parse_text
from labfleet.naming import server_slug, user_slug
from tests.kube.test_render_helpers import (
    kubeconfig,  # noqa: F401 - fixture
    kubespawner_pod,
    make_spawner,
)

DNS_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")
BUCKET = re.compile(r"[a-z0-9][a-z0-9._-]{1,61}[a-z0-9]")
HOSTILE = [
    "Alice", "alice.", "a.lice", "a_lice", "alice@x.com", "alice-x-com", "alice",
    "x" * 63, "x" * 64, "x" * 65, "秀樹", "üser", "9z9", "-start", "endswith-",
    "username--servername", "../etc", "a/b", "a b", "a\nb", "-rf", "--uid=0", "root",
    "ALICE", "alice ", "<script>", "user-has-dash", "user-has", "kube-system", "default",
]  # fmt: skip


@pytest.fixture
def per_user_gcs() -> Any:
    return parse_text("kubernetes: {users: {namespaces: per-user}, storage: {kind: gcsfuse}}")


def names_for(config: Any, username: str, server: str = "") -> dict[str, str]:
    spawner = make_spawner(config, username, server)
    return {"pod": spawner.pod_name, "pvc": spawner.pvc_name, "namespace": spawner.namespace}


async def test_hostile_usernames_give_valid_distinct_names(kubeconfig: Path) -> None:  # noqa: F811
    config = parse_text("kubernetes: {users: {namespaces: per-user}}")
    seen: dict[str, dict[str, str]] = {"pod": {}, "pvc": {}, "namespace": {}}
    for username in HOSTILE:
        names = names_for(config, username)
        assert names["pod"] == f"jupyter-{server_slug(username)}"
        assert names["pvc"] == f"home-{user_slug(username)}"
        assert names["namespace"] == f"labfleet-{user_slug(username)}"
        for kind, name in names.items():
            assert DNS_LABEL.fullmatch(name) and len(name) <= 63, (username, kind, name)
            assert name not in seen[kind], (username, seen[kind].get(name), kind)
            seen[kind][name] = username


async def test_user_namespace_never_equals_a_system_namespace(kubeconfig: Path) -> None:  # noqa: F811
    config = parse_text("kubernetes: {users: {namespaces: per-user}}")
    for username in ("kube-system", "default", "kube-public", "labfleet"):
        assert names_for(config, username)["namespace"] not in {
            "kube-system", "default", "kube-public", "labfleet",
        }  # fmt: skip


async def test_server_name_collision_cve_2020_15110(kubeconfig: Path) -> None:  # noqa: F811
    config = parse_text("servers: {named_servers: true}")
    dash_user = names_for(config, "user-has-dash")
    named = names_for(config, "user-has", "dash")
    assert dash_user["pod"] == "jupyter-user-has-dash"
    assert named["pod"] == "jupyter-user-has--dash"
    assert dash_user["pvc"] != named["pvc"]  # per-user volumes of different users


async def test_named_servers_of_one_user_share_the_home_volume_only(kubeconfig: Path) -> None:  # noqa: F811
    config = parse_text("servers: {named_servers: true}")
    pods = {names_for(config, "alice", s)["pod"] for s in ("", "a", "b", "a-b")}
    pvcs = {names_for(config, "alice", s)["pvc"] for s in ("", "a", "b", "a-b")}
    assert len(pods) == 4 and pvcs == {"home-alice"}


async def test_all_pairs_of_user_and_server_are_distinct(kubeconfig: Path) -> None:  # noqa: F811
    config = parse_text("servers: {named_servers: true}")
    parts = ["a", "a-b", "b", "a--b", "b-c"]
    pods = {}
    for user, server in itertools.product(parts, ["", *parts]):
        pod = names_for(config, user, server)["pod"]
        assert pod not in pods, ((user, server), pods.get(pod))
        pods[pod] = (user, server)


async def test_bucket_and_paths_from_hostile_names(
    kubeconfig: Path,  # noqa: F811
    per_user_gcs: Any,
) -> None:
    buckets = set()
    for username in HOSTILE:
        pod = await kubespawner_pod(per_user_gcs, username)
        bucket = pod["spec"]["volumes"][0]["csi"]["volumeAttributes"]["bucketName"]
        assert bucket == f"gcsfuse-{user_slug(username)}"
        assert BUCKET.fullmatch(bucket), bucket
        buckets.add(bucket)
    assert len(buckets) == len(HOSTILE)


async def test_nfs_sub_path_stays_inside_the_export(kubeconfig: Path) -> None:  # noqa: F811
    config = parse_text("kubernetes: {storage: {kind: nfs, server: nfs.example, path: /exports}}")
    for username in HOSTILE:
        pod = await kubespawner_pod(config, username)
        sub_path = pod["spec"]["containers"][0]["volumeMounts"][0]["subPath"]
        assert sub_path == f"home/{user_slug(username)}"
        assert ".." not in sub_path.split("/") and not sub_path.startswith("/")
