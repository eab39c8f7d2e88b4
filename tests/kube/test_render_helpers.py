"""Shared helpers for the render/validate/pod-security tests (plus checks of the helpers).

* :func:`render_example` renders one ``examples/*.yaml`` with fixed secrets;
* :func:`pod_specs` pulls every pod spec out of rendered workloads;
* :func:`kubespawner_pod` builds the pod a user would really get: a real
  :class:`~labfleet.kube.spawner.LabfleetKubeSpawner` configured from our
  settings, calling KubeSpawner's own ``get_pod_manifest``. It needs no cluster:
  KubeSpawner only *loads* a kubeconfig at construction, and ours points at a
  closed port that nothing ever dials.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from kubernetes_asyncio.client import ApiClient
from traitlets.config import Config

from labfleet.config.load import load_config
from labfleet.config.model import FleetConfig
from labfleet.kube.render import render_objects
from labfleet.kube.spawner_settings import build_kubespawner_settings
from labfleet.secrets import HubSecrets

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = sorted((REPO / "examples").glob("*.yaml"))
EXPECTED_EXAMPLES = {"minimal", "gke-iap", "github-nfs", "google-hardened", "kubeflow-form"}
FIXED_SECRETS = HubSecrets(
    cookie_secret="aa" * 32, proxy_token="bb" * 32, crypt_key="cc" * 32, supervisor_token="dd" * 32
)
WORKLOAD_KINDS = {"Deployment", "DaemonSet", "StatefulSet", "Job"}
_KUBECONFIG = """\
apiVersion: v1
kind: Config
clusters:
- name: nowhere
  cluster: {server: "https://127.0.0.1:9"}
contexts:
- name: nowhere
  context: {cluster: nowhere, user: nobody}
current-context: nowhere
users:
- name: nobody
  user: {token: not-a-token}
"""


def example_ids() -> list[str]:
    return [p.stem for p in EXAMPLES]


def load_example(name: str) -> FleetConfig:
    return load_config(REPO / "examples" / f"{name}.yaml")


def render_example(name: str) -> list[dict[str, Any]]:
    return render_objects(load_example(name), FIXED_SECRETS)


def pod_specs(objects: list[dict[str, Any]]) -> Iterator[tuple[str, dict[str, Any]]]:
    """(``Kind/name``, pod spec) for every workload that makes pods."""
    for obj in objects:
        if obj["kind"] in WORKLOAD_KINDS:
            yield f"{obj['kind']}/{obj['metadata']['name']}", obj["spec"]["template"]["spec"]


@pytest.fixture
def kubeconfig(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A kubeconfig that KubeSpawner can load; it points at a port nothing listens on."""
    from kubernetes_asyncio.config import kube_config

    path = tmp_path / "kubeconfig"
    path.write_text(_KUBECONFIG)
    monkeypatch.setenv("KUBECONFIG", str(path))
    # kubernetes_asyncio reads $KUBECONFIG once, at import time
    monkeypatch.setattr(kube_config, "KUBE_CONFIG_DEFAULT_LOCATION", str(path))
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    return path


def spawner_config(config: FleetConfig) -> Config:
    traitlets = Config()
    for cls, traits in build_kubespawner_settings(config).items():
        for key, value in traits.items():
            setattr(traitlets[cls], key, value)
    return traitlets


def make_spawner(
    config: FleetConfig,
    username: str,
    server_name: str = "",
    *,
    admin: bool = False,
    groups: tuple[str, ...] = (),
) -> Any:
    from labfleet.kube.spawner import LabfleetKubeSpawner

    assert os.environ.get("KUBECONFIG"), "use the kubeconfig fixture"
    user = SimpleNamespace(
        name=username,
        id=1,
        url=f"/user/{username}/",
        admin=admin,
        groups=[SimpleNamespace(name=g) for g in groups],
        escaped_name=username,
    )
    hub = SimpleNamespace(
        public_host="",
        url="http://hub:8081/hub/",
        base_url="/hub/",
        api_url="http://hub:8081/hub/api",
    )
    orm_spawner = SimpleNamespace(name=server_name, server=None)
    spawner = LabfleetKubeSpawner(
        _mock=True, config=spawner_config(config), user=user, hub=hub, orm_spawner=orm_spawner
    )
    spawner.api_token = "not-a-token"
    return spawner


async def kubespawner_pod(
    config: FleetConfig,
    username: str,
    profile: str | None = None,
    server_name: str = "",
    *,
    admin: bool = True,
) -> dict[str, Any]:
    """The pod manifest KubeSpawner itself builds from our settings, as a camelCase dict.

    ``admin`` (default) may start every profile; policy itself is tested separately.
    """
    spawner = make_spawner(config, username, server_name, admin=admin)
    spawner.user_options = {"profile": profile} if profile else {}
    return await pod_of(spawner)


async def pod_of(spawner: Any) -> dict[str, Any]:
    """What KubeSpawner's start would send: options loaded, then the pod manifest."""
    await spawner.load_user_options()
    pod = await spawner.get_pod_manifest()
    async with ApiClient() as client:
        serialized: dict[str, Any] = client.sanitize_for_serialization(pod)
    return serialized


# -- checks of the helpers themselves -------------------------------------------------


def test_every_seed_has_an_example() -> None:
    assert set(example_ids()) == EXPECTED_EXAMPLES


def test_pod_specs_finds_hub_and_proxy() -> None:
    found = [name for name, _ in pod_specs(render_example("minimal"))]
    assert found == ["Deployment/labfleet-hub", "Deployment/labfleet-proxy"]


async def test_kubespawner_pod_uses_our_names(kubeconfig: Path) -> None:
    pod = await kubespawner_pod(load_example("minimal"), "alice")
    assert pod["metadata"]["name"] == "jupyter-alice"
    assert pod["spec"]["volumes"][0]["persistentVolumeClaim"]["claimName"] == "home-alice"
