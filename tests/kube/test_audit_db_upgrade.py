"""Audit: the hub pod migrates its database, with a backup first, on sqlite *and* PostgreSQL.

Before the fix only sqlite hubs got JupyterHub's ``--upgrade-db``; a PostgreSQL hub after a
schema-changing JupyterHub upgrade would not start. Now every hub pod starts with an init
container ``upgrade-db`` running ``labfleet db upgrade`` (a backup, then the migration; an
interrupted one refuses to start, see docs/operating.md) with the hub's own environment and
volumes. Here the rendered init container is run for real: its command and environment, the
config from the rendered Secret, against a database at JupyterHub 4's schema.
"""

from __future__ import annotations

import base64
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from labfleet.config.load import parse_text
from labfleet.kube.hub import CONFIG_DIR, DATA_DIR, DB_URL_ENV
from labfleet.kube.render import render_objects
from labfleet.ops.schema import head_revision
from tests.kube.test_render_helpers import FIXED_SECRETS
from tests.ops import schema_fixtures as fx

SQLITE = "name: lab\nkubernetes: {namespace: lab}\n"
POSTGRES = (
    "name: lab\nkubernetes: {namespace: lab, hub: {database: "
    "{kind: postgres, secret_name: lab-db, secret_key: url}}}\n"
)


def hub_pod(text: str) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    objects = render_objects(parse_text(text), FIXED_SECRETS)
    hub = next(
        o for o in objects if o["kind"] == "Deployment" and o["metadata"]["name"] == "lab-hub"
    )
    return hub["spec"]["template"]["spec"], objects


@pytest.mark.parametrize("text", [SQLITE, POSTGRES], ids=["sqlite", "postgres"])
def test_every_hub_upgrades_its_database_before_starting(text: str) -> None:
    pod, _ = hub_pod(text)
    (init,) = pod["initContainers"]
    hub = pod["containers"][0]
    assert init["name"] == "upgrade-db"
    assert init["args"] == ["labfleet", "db", "upgrade"]
    assert init["image"] == hub["image"]
    assert init["env"] == hub["env"]  # the same database URL, config and secrets
    assert init["volumeMounts"] == hub["volumeMounts"]
    assert init["securityContext"] == hub["securityContext"]
    assert "--upgrade-db" not in hub["args"]  # done once, with a backup, by the init container
    if text == POSTGRES:
        env = {e["name"]: e for e in init["env"]}
        assert env[DB_URL_ENV]["valueFrom"]["secretKeyRef"] == {"name": "lab-db", "key": "url"}


def _resolve_env(container: dict[str, Any], objects: list[dict[str, Any]]) -> dict[str, str]:
    secrets = {o["metadata"]["name"]: o for o in objects if o["kind"] == "Secret"}
    env: dict[str, str] = {}
    for item in container["env"]:
        source = item.get("valueFrom") or {}
        if "value" in item:
            env[item["name"]] = item["value"]
        elif "secretKeyRef" in source:
            ref = source["secretKeyRef"]
            env[item["name"]] = base64.b64decode(secrets[ref["name"]]["data"][ref["key"]]).decode()
        elif "fieldRef" in source:
            env[item["name"]] = "lab"
    return env


def test_the_rendered_init_container_migrates_an_old_sqlite_hub(tmp_path: Path) -> None:
    """Its real command, environment and config file (paths mapped to a temporary folder)."""
    pod, objects = hub_pod(SQLITE)
    init = pod["initContainers"][0]
    data, etc = tmp_path / "data", tmp_path / "etc"
    data.mkdir()
    etc.mkdir()
    config_secret = next(o for o in objects if o["metadata"]["name"] == "lab-config")
    for key, value in config_secret["data"].items():
        (etc / key).write_bytes(base64.b64decode(value))
    fixture = fx.build(f"sqlite:///{data / 'jupyterhub.sqlite'}", fx.JUPYTERHUB_4)
    env = _resolve_env(init, objects)
    env = {k: v.replace(CONFIG_DIR, str(etc)).replace(DATA_DIR, str(data)) for k, v in env.items()}
    assert init["args"][0] == "labfleet"
    done = subprocess.run(
        [sys.executable, "-m", "labfleet.cli.main", *init["args"][1:]],
        env={"PATH": os.environ["PATH"], **env, "HOME": str(tmp_path)},
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert done.returncode == 0, done.stderr
    assert fx.revision_of_sqlite(str(data / "jupyterhub.sqlite")) == head_revision()
    assert list((data / "backups").glob("pre-upgrade-*.tar.gz")), "no backup taken first"
    assert fixture.token
