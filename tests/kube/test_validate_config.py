"""The ``kubernetes:`` section refuses what would render a broken or unsafe cluster."""

from __future__ import annotations

import pytest

from labfleet.config.load import ConfigError, parse_text
from labfleet.config.model import FleetConfig


def problems(text: str) -> str:
    with pytest.raises(ConfigError) as caught:
        parse_text(text)
    return "\n".join(str(p) for p in caught.value.problems)


def test_defaults_validate_and_need_no_cluster() -> None:
    config = FleetConfig()
    assert config.kubernetes.namespace == "labfleet"
    assert config.kubernetes.network.policies is True
    assert config.kubernetes.placeholders.replicas == 0
    assert config.kubernetes.prepuller.enabled is False


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "kubernetes: {nmespace: x}",
            "kubernetes.nmespace: unknown key; did you mean 'namespace'?",
        ),
        ("kubernetes: {namespace: Bad_Name}", "kubernetes.namespace"),
        (
            "kubernetes: {profiles: {gpu: {gpu_accelerator: nvidia-l4}}}",
            "profiles.gpu: no entry of 'profiles' has this slug",
        ),
        (
            "profiles: [{slug: cpu, display_name: CPU}]\n"
            "kubernetes: {profiles: {cpu: {gpu_accelerator: nvidia-l4}}}",
            "gpu_accelerator is set but profile cpu has gpus: 0",
        ),
        (
            "profiles: [{slug: g, display_name: G, gpus: 1}]\n"
            "kubernetes: {profiles: {g: {tpu: {accelerator: tpu-v5-lite-podslice,"
            " topology: 2x2, chips: 4}}}}",
            "GPUs or a TPU, not both",
        ),
        ("kubernetes: {placeholders: {replicas: 1, profile: nope}}", "placeholders.profile"),
        ("kubernetes: {access: {kind: ingress}}", "needs 'host'"),
        ("kubernetes: {access: {kind: gke-ingress}}", "needs 'host'"),
        (
            f"kubernetes: {{access: {{kind: gke-ingress, host: {'a' * 60}.example.com}}}}",
            "63 chars",
        ),
        (
            "kubernetes: {network: {allowed_private_ranges: [169.254.0.0/16]}}",
            "contains the cloud metadata server",
        ),
        (
            "kubernetes: {network: {allowed_private_ranges: ['fd00::/8']}}",
            "contains the cloud metadata server",
        ),
        ("kubernetes: {users: {uid: 0}}", "kubernetes.users.uid"),
        (
            "kubernetes: {users: {namespaces: per-user},"
            " storage: {kind: nfs, server: n, path: /x}}",
            "nfs storage needs the shared namespace",
        ),
        (
            "kubernetes: {storage: {kind: nfs, server: n, path: /x, sub_path: '../{user_slug}'}}",
            "must be relative",
        ),
        (
            "kubernetes: {storage: {kind: nfs, server: n, path: /x, sub_path: shared}}",
            "{user_slug}",
        ),
        ("kubernetes: {storage: {kind: gcsfuse, bucket_template: '{username}'}}", "user_slug"),
        ("kubernetes: {storage: {kind: gcsfuse, bucket_template: 'Bad_{user_slug}'}}", "bucket"),
        ("kubernetes: {storage: {kind: gcsfuse, mode: shared-bucket}}", "needs 'bucket'"),
        (
            "kubernetes: {storage: {kind: gcsfuse, mount_options: ['only-dir=/']}}",
            "not allowed",
        ),
        ("kubernetes: {storage: {kind: s3}}", "kubernetes.storage"),
        (
            "kubernetes: {users: {workload_identity: '{user_slug}@p.iam.gserviceaccount.com'}}",
            "workload_identity",
        ),
        ("kubernetes: {users: {per_user: {template: 'ns-{namespace}'}}}", "{user_slug}"),
        ("kubernetes: {users: {per_user: {template: '{user_slug!r}'}}}", "plain placeholders"),
        ("kubernetes: {hub: {database: {kind: postgres}}}", "needs secret_name"),
        ("kubernetes: {images: {pull_secrets: ['Not A Name']}}", "is not a Secret name"),
        ("kubernetes: {hub: {image: 'has space:1'}}", "is not an image reference"),
        (
            "kubernetes: {profiles: {default: {tolerations: [{operator: Exists, value: x}]}}}",
            "takes no value",
        ),
    ],
)
def test_rejected_with_the_key_path(text: str, expected: str) -> None:
    assert expected in problems(text)


def test_valid_combinations() -> None:
    config = parse_text(
        "kubernetes:\n"
        "  users: {namespaces: per-user,\n"
        "          workload_identity: '{user_slug}@p.iam.gserviceaccount.com'}\n"
        "  storage: {kind: gcsfuse, mode: shared-bucket, bucket: team-data}\n"
        "  network: {allowed_private_ranges: [10.20.0.0/24, 'fd12::/16']}\n"
    )
    assert config.kubernetes.users.namespaces == "per-user"


# -- warnings: valid everywhere, but would fail in the hub pod ------------------------------


def test_examples_have_no_kubernetes_warnings_but_the_documented_ones() -> None:
    from labfleet.kube.checks import image_warnings, kube_warnings, literal_secret_warning
    from tests.kube.test_render_helpers import example_ids, load_example

    for example in example_ids():
        config = load_example(example)
        # the two things check must say about the examples as they are (issue 13):
        expected = {image_warnings(config)[0]}  # the default hub image is not published
        if config.auth.kind == "dummy":
            expected.add(literal_secret_warning("auth.dummy.password"))  # a demo password
        assert set(kube_warnings(config)) == expected, example


def test_env_secret_not_provided_to_the_hub_pod_is_warned() -> None:
    from labfleet.kube.checks import kube_warnings

    config = parse_text(
        "auth: {kind: github, github: {client_id: x, client_secret: 'env:GH_SECRET',"
        " allowed_organizations: [org]}}"
    )
    (warning,) = [w for w in kube_warnings(config) if "image" not in w]
    assert "auth.github.client_secret reads $GH_SECRET" in warning
    provided = parse_text(
        "auth: {kind: github, github: {client_id: x, client_secret: 'env:GH_SECRET',"
        " allowed_organizations: [org]}}\n"
        "kubernetes: {hub: {env_from_secrets: {GH_SECRET: {secret: gh, key: s}}}}"
    )
    assert [w for w in kube_warnings(provided) if "image" not in w] == []


def test_iap_without_the_gke_load_balancer_is_warned() -> None:
    from labfleet.kube.checks import kube_warnings

    config = parse_text("auth: {kind: iap, iap: {audience: /projects/1/x}, allow_all: true}")
    assert any(
        "nothing in front of the hub sets the IAP header" in w for w in kube_warnings(config)
    )


def test_hub_env_names_are_checked() -> None:
    assert "set by labfleet" in problems(
        "kubernetes: {hub: {env_from_secrets: {LABFLEET_X: {secret: x, key: y}}}}"
    )
    assert "not an environment variable name" in problems(
        "kubernetes: {hub: {env_from_secrets: {'A-B': {secret: x, key: y}}}}"
    )


def test_literal_secret_in_the_config_is_warned() -> None:
    from labfleet.kube.checks import kube_warnings

    config = parse_text(
        "auth: {kind: google, google: {client_id: x, client_secret: hunter2},"
        " allowed_domains: [example.org]}"
    )
    (warning,) = [w for w in kube_warnings(config) if "image" not in w]
    assert warning.startswith("auth.google.client_secret is written in the config")
    assert "hunter2" not in warning
