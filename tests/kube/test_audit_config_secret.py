"""Audit: literal secrets in labfleet.yaml never land in a ConfigMap.

Before the fix the whole config went into a ConfigMap verbatim: ``examples/minimal.yaml``'s
``auth.dummy.password`` (or a literal OAuth client secret, or a database URL with its
password) was readable by anyone allowed to read ConfigMaps in the namespace. Now the hub's
config is a Secret (as Zero to JupyterHub keeps it), mounted as a file, and ``check`` still
warns about literal secrets, which belong in the operator's own Secrets.
"""

from __future__ import annotations

import base64
import json

from labfleet.config.load import parse_text
from labfleet.kube.checks import kube_warnings
from labfleet.kube.hub import CONFIG_DIR, CONFIG_FILE
from labfleet.kube.render import render_objects
from tests.kube.test_render_helpers import FIXED_SECRETS, load_example

LITERAL_OAUTH = """
auth:
  kind: github
  github: {client_id: abc, client_secret: s3cr3t-literal-value, allowed_organizations: [lab]}
hub: {db_url: "postgresql://hub:pa55word-literal@db/hub"}
"""


def test_no_configmap_carries_a_literal_secret() -> None:
    for config in (load_example("minimal"), parse_text(LITERAL_OAUTH)):
        objects = render_objects(config, FIXED_SECRETS)
        configmaps = json.dumps([o for o in objects if o["kind"] == "ConfigMap"])
        for literal in ("change-me-please", "s3cr3t-literal-value", "pa55word-literal"):
            assert literal not in configmaps


def test_the_hub_reads_its_config_from_a_secret_file() -> None:
    config = load_example("minimal")
    objects = render_objects(config, FIXED_SECRETS)
    secret = next(o for o in objects if o["kind"] == "Secret" and "config" in o["metadata"]["name"])
    text = base64.b64decode(secret["data"][CONFIG_FILE]).decode()
    assert parse_text(text).auth.dummy.password == "change-me-please"
    hub = next(
        o for o in objects if o["kind"] == "Deployment" and o["metadata"]["name"].endswith("-hub")
    )
    pod = hub["spec"]["template"]["spec"]
    volume = next(v for v in pod["volumes"] if v["name"] == "config")
    assert volume == {"name": "config", "secret": {"secretName": secret["metadata"]["name"]}}
    mounts = {m["name"]: m for m in pod["containers"][0]["volumeMounts"]}
    assert mounts["config"]["mountPath"] == CONFIG_DIR and mounts["config"]["readOnly"]


def test_check_warns_about_literal_secrets() -> None:
    warned = " ".join(kube_warnings(load_example("minimal")))
    assert "auth.dummy.password" in warned
    warned = " ".join(kube_warnings(parse_text(LITERAL_OAUTH)))
    assert "auth.github.client_secret" in warned and "hub.db_url" in warned
    assert "ConfigMap" not in warned  # no longer true, so no longer said


def test_labfleet_check_prints_the_kubernetes_warnings() -> None:
    """``labfleet check`` (not only render/plan/apply) says what a cluster would get wrong."""
    from tests.kube.test_render_cli import run
    from tests.kube.test_render_helpers import REPO

    result = run("check", str(REPO / "examples" / "minimal.yaml"))
    assert result.returncode == 0, result.stderr
    assert "warning (kubernetes): auth.dummy.password" in result.stderr
