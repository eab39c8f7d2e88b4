"""Audit: ``access.kind: load-balancer`` had no TLS, and the GitHub example ran OAuth over HTTP.

Before the fix the public Service only had port 80, labfleet-proxy was never given a
certificate, nothing warned that a GitHub/Google/OIDC sign-in (client secret exchange,
session cookie) then travels in the clear, and ``examples/github-nfs.yaml`` mounted NFS by
a service DNS name, which the kubelet (not the pod) resolves on the node: cluster DNS is
not in the node's resolver on most clusters, so the mount hangs.
"""

from __future__ import annotations

import ipaddress
from pathlib import Path
from typing import Any

import pytest

from labfleet.config.load import parse_text
from labfleet.kube.access import how_to_reach
from labfleet.kube.checks import kube_warnings
from labfleet.kube.render import render_objects
from tests.kube.test_render_helpers import FIXED_SECRETS, REPO, load_example, render_example

GITHUB_LB = """
name: lab
auth:
  kind: github
  github:
    client_id: Iv1.abc
    client_secret: env:GITHUB_CLIENT_SECRET
    allowed_organizations: [example]
kubernetes:
  namespace: lab
  hub:
    env_from_secrets:
      GITHUB_CLIENT_SECRET: {secret: github-oauth, key: client_secret}
  access:
    kind: load-balancer
"""


def _one(objects: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    found = [o for o in objects if o["kind"] == kind and o["metadata"]["name"] == name]
    assert len(found) == 1, f"{kind}/{name} not rendered"
    return found[0]


def _plain_http_warnings(text: str) -> list[str]:
    return [w for w in kube_warnings(parse_text(text)) if "plain HTTP" in w]


def test_oauth_over_a_plain_load_balancer_is_warned_about() -> None:
    warnings = _plain_http_warnings(GITHUB_LB)
    assert warnings, "GitHub OAuth over an HTTP load balancer passed without a warning"
    assert "kubernetes.access.load_balancer.tls_secret" in warnings[0]


@pytest.mark.parametrize(
    "extra",
    [
        "    load_balancer:\n      tls_secret: lab-tls\n",
        "    load_balancer:\n      tls_terminated_by_load_balancer: true\n",
    ],
)
def test_tls_on_the_load_balancer_silences_the_warning(extra: str) -> None:
    assert _plain_http_warnings(GITHUB_LB + extra) == []


def test_plain_ingress_without_tls_is_warned_about_too() -> None:
    text = GITHUB_LB.replace("kind: load-balancer", "kind: ingress\n    host: lab.example.org")
    assert _plain_http_warnings(text + "    ingress:\n      tls: false\n")
    assert _plain_http_warnings(text) == []  # ingress TLS is on by default


def test_password_sign_in_is_not_an_oauth_warning() -> None:
    text = GITHUB_LB.replace("kind: github", "kind: password")
    assert _plain_http_warnings(text) == []


def test_proxy_serves_the_secret_certificate_on_443_and_redirects_80() -> None:
    config = parse_text(GITHUB_LB + "    load_balancer:\n      tls_secret: lab-tls\n")
    objects = render_objects(config, FIXED_SECRETS)
    service = _one(objects, "Service", "lab-proxy-public")
    ports = {p["port"]: p["targetPort"] for p in service["spec"]["ports"]}
    assert ports == {443: "http", 80: "redirect"}
    assert service["spec"]["type"] == "LoadBalancer"
    pod = _one(objects, "Deployment", "lab-proxy")["spec"]["template"]["spec"]
    container = pod["containers"][0]
    args = container["args"]
    assert "--ssl-cert=/etc/labfleet/tls/tls.crt" in args
    assert "--ssl-key=/etc/labfleet/tls/tls.key" in args
    assert "--redirect-port=8080" in args and "--redirect-to=443" in args
    assert any(a.startswith("--ssl-reload-interval=") for a in args)  # renewed certs load
    assert {"name": "redirect", "containerPort": 8080, "protocol": "TCP"} in container["ports"]
    volume = next(v for v in pod["volumes"] if v["name"] == "tls")
    assert volume["secret"]["secretName"] == "lab-tls"
    mount = next(m for m in container["volumeMounts"] if m["name"] == "tls")
    assert mount == {"name": "tls", "mountPath": "/etc/labfleet/tls", "readOnly": True}
    assert how_to_reach(config).startswith("open https://")
    policy = _one(objects, "NetworkPolicy", "lab-proxy")
    public = policy["spec"]["ingress"][0]["ports"]
    assert {"port": 8080, "protocol": "TCP"} in public  # the redirect listener is reachable


def test_tls_terminated_by_the_load_balancer_serves_443_plainly_to_the_proxy() -> None:
    extra = (
        "    load_balancer:\n      tls_terminated_by_load_balancer: true\n"
        "      annotations:\n"
        "        service.beta.kubernetes.io/aws-load-balancer-ssl-cert: arn:aws:acm:x\n"
    )
    objects = render_objects(parse_text(GITHUB_LB + extra), FIXED_SECRETS)
    service = _one(objects, "Service", "lab-proxy-public")
    assert {p["port"]: p["targetPort"] for p in service["spec"]["ports"]} == {
        443: "http",
        80: "http",
    }
    annotations = service["metadata"]["annotations"]
    assert annotations["service.beta.kubernetes.io/aws-load-balancer-ssl-cert"] == "arn:aws:acm:x"
    args = _one(objects, "Deployment", "lab-proxy")["spec"]["template"]["spec"]["containers"][0]
    assert not any(a.startswith("--ssl-") for a in args["args"])


def test_a_plain_load_balancer_is_unchanged() -> None:
    objects = render_objects(parse_text(GITHUB_LB), FIXED_SECRETS)
    service = _one(objects, "Service", "lab-proxy-public")
    assert [(p["port"], p["targetPort"]) for p in service["spec"]["ports"]] == [(80, "http")]


def test_secret_and_lb_termination_are_exclusive() -> None:
    from labfleet.config.load import ConfigError

    extra = (
        "    load_balancer:\n      tls_secret: lab-tls\n"
        "      tls_terminated_by_load_balancer: true\n"
    )
    with pytest.raises(ConfigError, match="not both"):
        parse_text(GITHUB_LB + extra)


def test_github_example_signs_in_over_https_and_mounts_nfs_by_address() -> None:
    config = load_example("github-nfs")
    assert config.auth.kind == "github"
    assert [w for w in kube_warnings(config) if "plain HTTP" in w] == []
    assert how_to_reach(config).startswith("open https://")
    objects = render_example("github-nfs")
    service = _one(objects, "Service", "lsst-lab-proxy-public")
    assert 443 in {p["port"] for p in service["spec"]["ports"]}
    volume = next(o for o in objects if o["kind"] == "PersistentVolume")
    ipaddress.ip_address(volume["spec"]["nfs"]["server"])  # an address, not a DNS name
    text = (REPO / "examples" / "github-nfs.yaml").read_text()
    assert "kubelet" in text  # the comment says why an address


def test_nfs_by_service_dns_name_is_warned_about() -> None:
    text = GITHUB_LB + (
        "  storage:\n    kind: nfs\n    server: files.lab.svc.cluster.local\n    path: /exports\n"
    )
    assert [w for w in kube_warnings(parse_text(text)) if "kubelet" in w]


def test_labfleet_check_warns_about_oauth_over_plain_http(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from labfleet.cli.main import main

    on_cluster = tmp_path / "lb.yaml"
    on_cluster.write_text(GITHUB_LB)
    assert main(["check", "--no-machine", str(on_cluster)]) == 0  # a warning, not an error
    err = capsys.readouterr().err
    assert "plain HTTP" in err and "load_balancer.tls_secret" in err

    local = tmp_path / "local.yaml"
    local.write_text(GITHUB_LB.split("kubernetes:")[0])
    assert main(["check", "--no-machine", str(local)]) == 0
    assert "plain HTTP" in capsys.readouterr().err  # labfleet up without tls:

    fixed = tmp_path / "fixed.yaml"
    fixed.write_text(GITHUB_LB + "    load_balancer: {tls_secret: lab-tls}\n")
    assert main(["check", "--no-machine", str(fixed)]) == 0
    assert "plain HTTP" not in capsys.readouterr().err

    github = load_example("github-nfs")
    assert github.tls is None  # an example for a cluster: no local warning expected there...
    assert main(["check", "--no-machine", str(REPO / "examples" / "github-nfs.yaml")]) == 0
    assert "plain HTTP" not in capsys.readouterr().err  # ...because it says where it runs
