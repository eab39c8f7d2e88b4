"""Profile policy in a real JupyterHub: the form shows only allowed profiles, and forbidden
requests are refused with 403 through the form and the REST API, before any process starts."""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from hubrunner import RunningHub, login_form, merge, run_hub

from labfleet.auth.settings import build_auth_settings
from labfleet.config.auth import AuthSection
from labfleet.config.model import FleetConfig
from labfleet.runtime import Runtime
from labfleet.spawn.policy import profiles_setting

pytestmark = pytest.mark.integration

HERE = Path(__file__).resolve().parent
PROFILES = [
    {"slug": "small", "display_name": "Small", "default": True, "memory": "1G"},
    {"slug": "medium", "display_name": "Medium <script>alert(1)</script>", "cpu": 2},
    {"slug": "gpu", "display_name": "GPU", "gpus": 1, "allowed_groups": ["ml"]},
    {"slug": "big", "display_name": "Big", "allowed_users": ["Alice"]},
    {"slug": "ops", "display_name": "Ops", "admin_only": True},
]


@pytest.fixture(scope="module")
def hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningHub]:
    tmp = tmp_path_factory.mktemp("policy-hub")
    records = tmp / "records"
    records.mkdir()
    config = FleetConfig.model_validate(
        {"auth": {"kind": "dummy", "admin_users": ["boss"]}, "profiles": PROFILES}
    )
    settings = merge(
        build_auth_settings(AuthSection.model_validate(config.auth.model_dump()), Runtime(tmp)),
        {
            "JupyterHub": {"spawner_class": "policy_spawner.PolicyTestSpawner"},
            "PolicyTestSpawner": {
                "labfleet_profiles": profiles_setting(config.profiles),
                "record_dir": str(records),
                "home_dir_template": str(tmp / "homes" / "{username}"),
            },
        },
    )
    with run_hub(tmp / "hub", settings, python_path=[HERE]) as running:
        with running.api() as api:
            for name in ("alice", "bob", "carol", "boss"):
                api.post(f"/users/{name}")
        yield running


def _applied(hub: RunningHub, name: str) -> list[str]:
    path = hub.data_dir.parent / "records" / f"{name}.log"
    return path.read_text().split() if path.exists() else []


def _wait_ready(api: httpx.Client, name: str) -> dict[str, object]:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        server = api.get(f"/users/{name}").json()["servers"].get("")
        if server and server["ready"]:
            return dict(server)
        time.sleep(0.2)
    raise AssertionError(f"{name}'s server did not become ready")


def _stop(api: httpx.Client, name: str) -> None:
    api.delete(f"/users/{name}/server")
    deadline = time.monotonic() + 30
    while api.get(f"/users/{name}").json()["servers"] and time.monotonic() < deadline:
        time.sleep(0.2)


def _start(api: httpx.Client, name: str, options: object) -> httpx.Response:
    return api.post(f"/users/{name}/server", content=json.dumps(options))


@pytest.mark.parametrize(
    ("name", "options", "reason"),
    [
        ("bob", {"profile": "gpu"}, "not available to bob"),
        ("bob", {"profile": "big"}, "not available to bob"),
        ("bob", {"profile": "ops"}, "admins only"),
        ("bob", {"profile": "nope"}, "unknown profile"),
        ("bob", {"profile": "small\n"}, "not a profile name"),
        ("bob", {"profile": ["small"]}, "not a profile name"),
        ("bob", {"profile": "small", "image": "evil.registry/x:y"}, "unknown server option"),
    ],
)
def test_api_refuses_forbidden_options_before_starting(
    hub: RunningHub, name: str, options: dict[str, object], reason: str
) -> None:
    with hub.api() as api:
        response = _start(api, name, options)
        assert response.status_code == 403, response.text
        assert reason in response.json()["message"]
        assert api.get(f"/users/{name}").json()["servers"] == {}
    assert _applied(hub, name) == []


def test_new_style_body_is_checked_too(hub: RunningHub) -> None:
    with hub.api() as api:
        body = {"display_name": "x", "user_options": {"profile": "gpu"}}
        response = api.post("/users/bob/server", json=body)
        assert response.status_code == 403
        assert api.get("/users/bob").json()["servers"] == {}


def test_api_starts_an_allowed_profile(hub: RunningHub) -> None:
    with hub.api() as api:
        assert _start(api, "carol", {"profile": "medium"}).status_code in (201, 202)
        _wait_ready(api, "carol")
        _stop(api, "carol")
        # No options: JupyterHub reuses the last ones (and they are checked again).
        assert _start(api, "carol", {}).status_code in (201, 202)
        _wait_ready(api, "carol")
        _stop(api, "carol")
        assert _start(api, "carol", {"profile": ""}).status_code in (201, 202)  # the default
        _wait_ready(api, "carol")
        _stop(api, "carol")
    assert _applied(hub, "carol") == ["medium", "medium", "small"]


def test_allowed_users_match_after_normalisation(hub: RunningHub) -> None:
    with hub.api() as api:
        assert _start(api, "alice", {"profile": "big"}).status_code in (201, 202)
        _wait_ready(api, "alice")
        _stop(api, "alice")
    assert _applied(hub, "alice") == ["big"]


def test_group_change_applies_at_next_spawn(hub: RunningHub) -> None:
    with hub.api() as api:
        api.post("/groups/ml")
        assert _start(api, "carol", {"profile": "gpu"}).status_code == 403
        api.post("/groups/ml/users", json={"users": ["carol"]})
        assert _start(api, "carol", {"profile": "gpu"}).status_code in (201, 202)
        _wait_ready(api, "carol")
        _stop(api, "carol")
        api.request("DELETE", "/groups/ml/users", json={"users": ["carol"]})
        # no options: the remembered choice is re-checked and refused once, then forgotten,
        # so the next plain start gets the default instead of the same 403 forever
        assert _start(api, "carol", {}).status_code == 403
        assert _start(api, "carol", {"profile": "gpu"}).status_code == 403
        assert _start(api, "carol", {}).status_code in (201, 202)
        _wait_ready(api, "carol")
        _stop(api, "carol")
    assert _applied(hub, "carol")[-2:] == ["gpu", "small"]


def test_admin_only_profile_for_admins(hub: RunningHub) -> None:
    with hub.api() as api:
        assert _start(api, "boss", {"profile": "ops"}).status_code in (201, 202)
        _wait_ready(api, "boss")
        _stop(api, "boss")
    assert _applied(hub, "boss") == ["ops"]


@contextlib.contextmanager
def _browser(hub: RunningHub, name: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=hub.url, timeout=30) as client:
        assert login_form(client, name, "any").status_code == 302
        yield client


def test_form_lists_only_allowed_profiles_escaped(hub: RunningHub) -> None:
    with _browser(hub, "bob") as client:
        form = client.get("/hub/spawn/bob")
    assert form.status_code == 200
    assert 'value="small"' in form.text and 'value="medium"' in form.text
    for hidden in ('value="gpu"', 'value="big"', 'value="ops"'):
        assert hidden not in form.text
    assert "<script>alert(1)</script>" not in form.text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in form.text


def test_form_post_of_a_forbidden_profile_is_403(hub: RunningHub) -> None:
    with _browser(hub, "bob") as client:
        page = client.get("/hub/spawn/bob")
        xsrf = client.cookies.get("_xsrf") or ""
        response = client.post("/hub/spawn/bob", data={"profile": "gpu", "_xsrf": xsrf})
    assert page.status_code == 200
    assert response.status_code == 403
    assert "not available to bob" in response.text
    with hub.api() as api:
        assert api.get("/users/bob").json()["servers"] == {}
    assert _applied(hub, "bob") == []


def test_form_post_of_an_allowed_profile_starts_it(hub: RunningHub) -> None:
    with _browser(hub, "bob") as client:
        client.get("/hub/spawn/bob")
        xsrf = client.cookies.get("_xsrf") or ""
        response = client.post("/hub/spawn/bob", data={"profile": "medium", "_xsrf": xsrf})
    assert response.status_code == 302
    with hub.api() as api:
        _wait_ready(api, "bob")
        _stop(api, "bob")
    assert _applied(hub, "bob") == ["medium"]


def test_query_string_spawn_of_a_forbidden_profile_is_refused(hub: RunningHub) -> None:
    with _browser(hub, "bob") as client:
        response = client.get("/hub/spawn/bob?profile=gpu")
    assert response.status_code == 403
    assert "not available to bob" in response.text
    with hub.api() as api:
        assert api.get("/users/bob").json()["servers"] == {}
