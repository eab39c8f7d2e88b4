"""The rollout checksum changes exactly when a Secret value changes."""

from __future__ import annotations

from labfleet.kube.secret_checksum import ANNOTATION, annotate_pod_template, secrets_checksum


def test_checksum_follows_values_not_order() -> None:
    a = secrets_checksum({"cookie_secret": "aa", "proxy_token": "bb"})
    assert a == secrets_checksum({"proxy_token": "bb", "cookie_secret": "aa"})
    assert a != secrets_checksum({"cookie_secret": "aa", "proxy_token": "bc"})
    assert "aa" not in a and len(a) == 64


def test_annotation_lands_on_the_pod_template_only() -> None:
    deployment = {"kind": "Deployment", "spec": {"template": {"spec": {"containers": []}}}}
    out = annotate_pod_template(deployment, "x" * 64)
    assert out["spec"]["template"]["metadata"]["annotations"][ANNOTATION] == "x" * 64
    assert "metadata" not in deployment["spec"]["template"], "the input is not changed"
