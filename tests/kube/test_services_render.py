"""``services:`` on Kubernetes: a Deployment + Service per application in the hub's namespace.

Rendered objects are checked as data, against the real OpenAPI schemas and Pod
Security "restricted", then applied to the strict API double (no cluster runs
here) until they roll out. The hub side is checked through the very settings the
hub pod builds: an external JupyterHub service at the gate's Service, whose token
comes from the same Secret the gate reads.
"""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest

from labfleet.config.load import ConfigError, parse_text
from labfleet.hub.entry import resolve_references
from labfleet.hub.settings import build_hub_settings
from labfleet.kube.apply import Cluster, apply, connect
from labfleet.kube.render import render_objects
from labfleet.runtime import Runtime
from tests.kube.double import running_double
from tests.kube.double.pod_security import violations
from tests.kube.test_render_helpers import FIXED_SECRETS

CONFIG = """
name: lab
auth:
  kind: dummy
kubernetes:
  namespace: lab
services:
  - name: firefly
    display_name: Firefly
    image: docker.io/ipac/firefly:2024.3
    port: 8080
    url_prefix: /firefly/
    environment: {MAX_JVM_SIZE: 2G}
    resources: {cpu: 1, memory: 2Gi}
  - name: ray
    image: docker.io/rayproject/ray:2.9.0
    command: [ray, start, --head, --dashboard-host=127.0.0.1, --block]
    port: 8265
    admin_only: true
  - name: local-only
    command: [python3, -m, http.server, "9000"]
    port: 9000
"""


def _objects() -> list[dict[str, Any]]:
    return render_objects(parse_text(CONFIG), FIXED_SECRETS)


def _one(objects: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    found = [o for o in objects if o["kind"] == kind and o["metadata"]["name"] == name]
    assert len(found) == 1, f"{kind}/{name}"
    return found[0]


def _env(container: dict[str, Any]) -> dict[str, Any]:
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in container["env"]}


def test_each_image_service_is_a_deployment_service_and_token_secret() -> None:
    objects = _objects()
    names = {(o["kind"], o["metadata"]["name"]) for o in objects}
    for name in ("lab-svc-firefly", "lab-svc-ray"):
        assert {("Deployment", name), ("Service", name), ("Secret", name)} <= names
    assert not [n for n in names if "local-only" in n[1]]  # no image: runs only under labfleet up
    pod = _one(objects, "Deployment", "lab-svc-firefly")["spec"]["template"]["spec"]
    app, gate = pod["containers"]
    assert app["image"] == "docker.io/ipac/firefly:2024.3"
    assert app["ports"][0]["containerPort"] == 8080
    assert _env(app) == {"MAX_JVM_SIZE": "2G", "LABFLEET_SERVICE_PREFIX": "/firefly/"}
    assert app["resources"]["limits"] == {"cpu": "1.0", "memory": "2Gi"}
    assert gate["args"] == ["python", "-m", "labfleet.services.gate"]
    assert (
        gate["image"]
        == _one(objects, "Deployment", "lab-hub")["spec"]["template"]["spec"]["containers"][0][
            "image"
        ]
    )
    env = _env(gate)
    assert env["LABFLEET_GATE_UPSTREAM"] == "http://127.0.0.1:8080"
    assert env["LABFLEET_GATE_URL_PREFIX"] == "/firefly/"
    assert env["JUPYTERHUB_SERVICE_PREFIX"] == "/services/firefly/"
    assert env["JUPYTERHUB_API_URL"] == "http://lab-hub:8081/hub/api"
    assert env["JUPYTERHUB_API_TOKEN"] == {
        "secretKeyRef": {"name": "lab-svc-firefly", "key": "api_token"}
    }
    ray = _one(objects, "Deployment", "lab-svc-ray")["spec"]["template"]["spec"]["containers"][0]
    assert ray["command"][:2] == ["ray", "start"]
    service = _one(objects, "Service", "lab-svc-firefly")
    assert service["spec"]["ports"] == [
        {"name": "gate", "port": 8000, "targetPort": "gate", "protocol": "TCP"}
    ]
    secret = _one(objects, "Secret", "lab-svc-firefly")
    assert secret["metadata"]["annotations"]["labfleet.io/apply-policy"] == "create-only"
    assert len(base64.b64decode(secret["data"]["api_token"])) == 64


def test_pods_are_restricted_and_objects_schema_valid() -> None:
    for obj in _objects():
        if "svc" not in obj["metadata"]["name"] and "services" not in obj["metadata"]["name"]:
            continue
        kubernetes_validate.validate(obj, "1.33", strict=True)
        if obj["kind"] == "Deployment":
            assert violations("restricted", obj["spec"]["template"]["spec"]) == []


def test_network_policies_let_only_the_proxy_reach_the_gate() -> None:
    objects = _objects()
    own = _one(objects, "NetworkPolicy", "lab-services")["spec"]
    assert own["policyTypes"] == ["Ingress"]
    assert own["ingress"] == [
        {
            "from": [{"podSelector": {"matchLabels": {
                "app.kubernetes.io/name": "labfleet",
                "app.kubernetes.io/instance": "lab",
                "app.kubernetes.io/component": "proxy",
            }}}],
            "ports": [{"port": "gate", "protocol": "TCP"}],
        }
    ]  # fmt: skip
    to_hub = _one(objects, "NetworkPolicy", "lab-services-to-hub")["spec"]
    assert to_hub["ingress"][0]["ports"] == [{"port": 8081, "protocol": "TCP"}]
    from_proxy = _one(objects, "NetworkPolicy", "lab-proxy-to-services")["spec"]
    assert from_proxy["policyTypes"] == ["Egress"]
    assert from_proxy["egress"][0]["ports"] == [{"port": 8000, "protocol": "TCP"}]


def test_the_hub_knows_them_as_external_services_with_the_secret_token() -> None:
    config = parse_text(CONFIG)
    runtime = Runtime(data_dir=Path("/srv/labfleet"), platform="kubernetes", hub_port=8081)
    hub = build_hub_settings(config, runtime, FIXED_SECRETS)["JupyterHub"]
    services = {s["name"]: s for s in hub["services"]}
    assert "local-only" not in services
    firefly = services["firefly"]
    assert firefly["url"] == "http://lab-svc-firefly.lab.svc:8000"
    assert firefly["api_token"] == "env:LABFLEET_SERVICE_TOKEN_FIREFLY"
    assert "command" not in firefly  # external: the hub does not start it
    user_role = next(r for r in hub["load_roles"] if r["name"] == "user")
    assert "access:services!service=firefly" in user_role["scopes"]
    assert "access:services!service=ray" not in user_role["scopes"]  # admin_only
    # the hub container reads the token from the Secret the gate reads
    deployment = _one(_objects(), "Deployment", "lab-hub")
    hub_env = _env(deployment["spec"]["template"]["spec"]["containers"][0])
    assert hub_env["LABFLEET_SERVICE_TOKEN_FIREFLY"] == {
        "secretKeyRef": {"name": "lab-svc-firefly", "key": "api_token"}
    }
    resolved = resolve_references(
        {"JupyterHub": hub},
        {"LABFLEET_SERVICE_TOKEN_FIREFLY": "t0k", "LABFLEET_SERVICE_TOKEN_RAY": "r"},
    )
    assert {s["name"]: s.get("api_token") for s in resolved["JupyterHub"]["services"]}[
        "firefly"
    ] == "t0k"


def test_a_service_without_an_image_is_warned_about() -> None:
    from labfleet.kube.checks import kube_warnings

    warnings = [w for w in kube_warnings(parse_text(CONFIG)) if "no image" in w]
    assert len(warnings) == 1 and "local-only" in warnings[0]


def test_bad_entries_are_refused_with_the_key_path() -> None:
    with pytest.raises(ConfigError, match="services"):
        parse_text("services:\n  - {name: dashboard, command: [x], port: 9000}\n")
    with pytest.raises(ConfigError, match=r"command.*image"):
        parse_text("services:\n  - {name: empty, port: 9000}\n")
    with pytest.raises(ConfigError, match="two services"):
        parse_text(
            "services:\n  - {name: a, command: [x], port: 9000}\n"
            "  - {name: a, command: [y], port: 9001}\n"
        )


def test_apply_rolls_the_services_out_in_the_double(tmp_path: Path) -> None:
    with running_double() as double:
        kubeconfig = double.write_kubeconfig(tmp_path / "kubeconfig", namespace="lab")
        result = apply(Cluster(connect(kubeconfig)), _objects(), poll=0.1, timeout=30)
        assert result.rollout is not None and result.rollout.ready
        assert double.get("apps/v1", "Deployment", "lab-svc-firefly", "lab") is not None
        pods = double.list("v1", "Pod", "lab", **{"labfleet.io/service": "ray"})
        assert len(pods) == 1


def test_the_gate_reads_its_rendered_environment() -> None:
    from labfleet.services.gate import GateSettings

    pod = _one(_objects(), "Deployment", "lab-svc-firefly")["spec"]["template"]["spec"]
    env = {e["name"]: e["value"] for e in pod["containers"][1]["env"] if "value" in e}
    gate = GateSettings.from_env({**env, "JUPYTERHUB_API_TOKEN": "from-the-secret"})
    assert (gate.bind_host, gate.bind_port) == ("0.0.0.0", 8000)
    assert gate.prefix == "/services/firefly/" and gate.command is None
    assert gate.upstream_path("/services/firefly/app.js") == "/firefly/app.js"
    assert gate.public_location("/firefly/login") == "/services/firefly/login"
    assert gate.public_location("http://127.0.0.1:8080/firefly/x") == "/services/firefly/x"
