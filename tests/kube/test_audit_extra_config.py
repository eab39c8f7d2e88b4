"""Audit: ``hub.extra_config`` adds to labfleet's settings instead of silently replacing them.

Before the fix, ``Spawner.environment`` (the docs' own example) never reached a pod on
Kubernetes, and a ``JupyterHub.services`` entry removed the culler and the supervisor.
The settings go through real traitlets into a real LabfleetKubeSpawner here.
"""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest
from traitlets.config import Config

from labfleet.config.load import parse_text
from labfleet.hub.extra_config import ExtraConfigConflict
from labfleet.hub.settings import build_hub_settings
from labfleet.runtime import Runtime
from labfleet.secrets import HubSecrets
from tests.kube.test_render_helpers import kubeconfig, pod_of  # noqa: F401 - fixture

SECRETS = HubSecrets(
    cookie_secret="ab" * 32, proxy_token="p" * 64, crypt_key="cd" * 32, supervisor_token="s" * 64
)
KUBE = Runtime(data_dir=Path("/srv/labfleet"), platform="kubernetes")
LOCAL = Runtime(data_dir=Path("/srv/lf"))

BASE = """
profiles:
  - {slug: small, display_name: Small, default: true, cpu: 1, memory: 2G}
culling: {timeout: 1h}
kubernetes:
  users: {environment: {OURS: "1"}}
"""


def _settings(extra: str, runtime: Runtime) -> dict:
    return build_hub_settings(
        parse_text(BASE + "hub:\n  extra_config:\n" + extra), runtime, SECRETS
    )


async def test_spawner_environment_reaches_the_pod_on_kubernetes(kubeconfig: Path) -> None:  # noqa: F811
    from labfleet.kube.spawner import LabfleetKubeSpawner

    settings = _settings("    Spawner: {environment: {TEAM: data}}\n", KUBE)
    config = Config()
    for cls, traits in settings.items():
        for key, value in traits.items():
            setattr(config[cls], key, value)
    user = SimpleNamespace(
        name="alice", id=1, url="/user/alice/", admin=True, groups=[], escaped_name="alice"
    )
    hub = SimpleNamespace(
        public_host="",
        url="http://hub:8081/hub/",
        base_url="/hub/",
        api_url="http://hub:8081/hub/api",
    )
    spawner = LabfleetKubeSpawner(
        _mock=True,
        config=config,
        user=user,
        hub=hub,
        orm_spawner=SimpleNamespace(name="", server=None),
    )
    spawner.api_token = "not-a-token"
    spawner.user_options = {"profile": "small"}
    pod = await pod_of(spawner)
    env = {e["name"]: e.get("value") for e in pod["spec"]["containers"][0]["env"]}
    assert env["TEAM"] == "data"
    assert env["OURS"] == "1"


@pytest.mark.parametrize("runtime", [LOCAL, KUBE], ids=["local", "kubernetes"])
def test_an_extra_service_keeps_the_culler_and_supervisor(runtime: Runtime) -> None:
    settings = _settings(
        "    JupyterHub:\n      services: [{name: firefly, url: 'http://127.0.0.1:9999'}]\n",
        runtime,
    )
    names = {s["name"] for s in settings["JupyterHub"]["services"]}
    assert "firefly" in names
    assert "idle-culler" in names
    assert len(names) >= 3  # the supervisor's service too


def test_reusing_one_of_our_service_names_is_refused() -> None:
    with pytest.raises(ExtraConfigConflict, match="idle-culler"):
        _settings("    JupyterHub:\n      services: [{name: idle-culler, command: [x]}]\n", LOCAL)


def test_a_dict_trait_is_updated_key_by_key() -> None:
    settings = _settings("    JupyterHub: {template_vars: {mine: 1}}\n", LOCAL)
    assert settings["JupyterHub"]["template_vars"]["mine"] == 1
    assert len(settings["JupyterHub"]["template_vars"]) > 1
