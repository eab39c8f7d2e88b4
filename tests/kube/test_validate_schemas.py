"""Every rendered object of every example validates against real Kubernetes OpenAPI schemas.

Core kinds: the schemas shipped by ``kubernetes-validate`` for several
Kubernetes minor versions, in *strict* mode (an unknown field fails).
Custom resources (GKE BackendConfig/FrontendConfig/ManagedCertificate,
cert-manager ClusterIssuer) are not in those schemas; they are checked
against strict schemas transcribed below from the published CRDs, for the
fields we render. No cluster is involved anywhere.
"""

from __future__ import annotations

import copy
import functools
from collections.abc import Iterator
from typing import Any

import jsonschema
import kubernetes_validate
import pytest

from tests.kube.test_render_helpers import (
    example_ids,
    kubeconfig,  # noqa: F401 - fixture
    kubespawner_pod,
    load_example,
    render_example,
)

#: Oldest GKE/EKS-supported line through the newest the package ships.
VERSIONS = ["1.31", "1.33", "1.35", "1.37"]

_NAME = {"type": "string", "pattern": r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$", "maxLength": 253}
_META = {
    "type": "object",
    "required": ["name"],
    "properties": {
        "name": _NAME,
        "namespace": {"type": "string"},
        "labels": {"type": "object", "additionalProperties": {"type": "string"}},
        "annotations": {"type": "object", "additionalProperties": {"type": "string"}},
    },
    "additionalProperties": False,
}


def _crd(api_version: str, kind: str, spec: dict[str, Any]) -> dict[str, Any]:
    return {
        "type": "object",
        "required": ["apiVersion", "kind", "metadata", "spec"],
        "properties": {
            "apiVersion": {"const": api_version},
            "kind": {"const": kind},
            "metadata": _META,
            "spec": spec,
        },
        "additionalProperties": False,
    }


def _obj(properties: dict[str, Any], required: list[str] | None = None) -> dict[str, Any]:
    return {
        "type": "object",
        "properties": properties,
        "required": required or [],
        "additionalProperties": False,
    }


_INT = {"type": "integer"}
CRD_SCHEMAS: dict[tuple[str, str], dict[str, Any]] = {
    # github.com/kubernetes/ingress-gce: backendconfig v1 CRD
    ("cloud.google.com/v1", "BackendConfig"): _crd(
        "cloud.google.com/v1",
        "BackendConfig",
        _obj(
            {
                "iap": _obj(
                    {
                        "enabled": {"type": "boolean"},
                        "oauthclientCredentials": _obj(
                            {"secretName": {"type": "string"}}, ["secretName"]
                        ),
                    },
                    ["enabled"],
                ),
                "healthCheck": _obj(
                    {
                        "checkIntervalSec": _INT,
                        "timeoutSec": _INT,
                        "healthyThreshold": _INT,
                        "unhealthyThreshold": _INT,
                        "type": {"type": "string", "enum": ["HTTP", "HTTPS", "HTTP2"]},
                        "requestPath": {"type": "string", "pattern": "^/"},
                        "port": _INT,
                    }
                ),
                "timeoutSec": {"type": "integer", "minimum": 1},
            }
        ),
    ),
    # ingress-gce: frontendconfig v1beta1 CRD
    ("networking.gke.io/v1beta1", "FrontendConfig"): _crd(
        "networking.gke.io/v1beta1",
        "FrontendConfig",
        _obj(
            {
                "redirectToHttps": _obj(
                    {
                        "enabled": {"type": "boolean"},
                        "responseCodeName": {
                            "type": "string",
                            "enum": [
                                "MOVED_PERMANENTLY_DEFAULT",
                                "FOUND",
                                "SEE_OTHER",
                                "TEMPORARY_REDIRECT",
                                "PERMANENT_REDIRECT",
                            ],
                        },
                    },
                    ["enabled"],
                ),
                "sslPolicy": {"type": "string"},
            }
        ),
    ),
    # github.com/GoogleCloudPlatform/gke-managed-certs: managedcertificates CRD (v1)
    ("networking.gke.io/v1", "ManagedCertificate"): _crd(
        "networking.gke.io/v1",
        "ManagedCertificate",
        _obj(
            {
                "domains": {
                    "type": "array",
                    "minItems": 1,
                    "maxItems": 100,
                    "items": {
                        "type": "string",
                        "maxLength": 63,
                        "pattern": r"^(([a-zA-Z0-9]+|[a-zA-Z0-9][-a-zA-Z0-9]*[a-zA-Z0-9])\.)+"
                        r"[a-zA-Z][-a-zA-Z0-9]*[a-zA-Z0-9]\.?$",
                    },
                }
            },
            ["domains"],
        ),
    ),
    # cert-manager.io/v1 ClusterIssuer (ACME with HTTP-01 through an Ingress)
    ("cert-manager.io/v1", "ClusterIssuer"): _crd(
        "cert-manager.io/v1",
        "ClusterIssuer",
        _obj(
            {
                "acme": _obj(
                    {
                        "server": {"type": "string", "pattern": "^https://"},
                        "email": {"type": "string"},
                        "privateKeySecretRef": _obj(
                            {"name": {"type": "string"}, "key": {"type": "string"}}, ["name"]
                        ),
                        "solvers": {
                            "type": "array",
                            "items": _obj(
                                {
                                    "http01": _obj(
                                        {
                                            "ingress": _obj(
                                                {
                                                    "class": {"type": "string"},
                                                    "ingressClassName": {"type": "string"},
                                                    "name": {"type": "string"},
                                                    "serviceType": {"type": "string"},
                                                }
                                            )
                                        }
                                    ),
                                    "selector": {"type": "object"},
                                }
                            ),
                        },
                    },
                    ["server", "privateKeySecretRef"],
                )
            },
        ),
    ),
}


@pytest.fixture(autouse=True, scope="module")
def _cached_schemas() -> Iterator[None]:
    """kubernetes-validate re-reads its JSON files on every call; read each file once."""
    from kubernetes_validate import utils

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(
            utils, "schema_contents", functools.lru_cache(maxsize=None)(utils.schema_contents)
        )
        yield


def validate(obj: dict[str, Any], version: str) -> None:
    key = (obj["apiVersion"], obj["kind"])
    if key in CRD_SCHEMAS:
        jsonschema.validate(obj, CRD_SCHEMAS[key])
        return
    kubernetes_validate.validate(obj, version, strict=True)


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("example", example_ids())
def test_every_rendered_object_validates(example: str, version: str) -> None:
    objects = render_example(example)
    assert objects
    for obj in objects:
        try:
            validate(obj, version)
        except (kubernetes_validate.ValidationError, jsonschema.ValidationError) as exc:
            where = "/".join(str(p) for p in exc.absolute_path)
            pytest.fail(
                f"{example} {obj['kind']}/{obj['metadata']['name']} at {where}: {exc.message}"
            )


@pytest.mark.parametrize("example", example_ids())
async def test_kubespawner_pods_validate(example: str, kubeconfig: object) -> None:  # noqa: F811
    """The pod KubeSpawner builds for each profile is a valid Pod in every version."""
    config = load_example(example)
    for profile in config.profiles:
        pod = await kubespawner_pod(config, "alice", profile.slug)
        for version in VERSIONS:
            kubernetes_validate.validate(pod, version, strict=True)


def test_strict_mode_rejects_an_unknown_field() -> None:
    """The validator really is strict: a typo in a rendered object would fail."""
    service = next(o for o in render_example("minimal") if o["kind"] == "Service")
    broken = copy.deepcopy(service)
    broken["spec"]["portz"] = broken["spec"].pop("ports")
    with pytest.raises(kubernetes_validate.ValidationError):
        validate(broken, VERSIONS[-1])


def test_crd_schemas_reject_unknown_fields() -> None:
    objects = render_example("gke-iap")
    backend = copy.deepcopy(next(o for o in objects if o["kind"] == "BackendConfig"))
    backend["spec"]["iap"]["enable"] = True
    with pytest.raises(jsonschema.ValidationError):
        validate(backend, VERSIONS[-1])
    cert = copy.deepcopy(next(o for o in objects if o["kind"] == "ManagedCertificate"))
    cert["spec"]["domains"] = ["x" * 60 + ".example.com"]
    with pytest.raises(jsonschema.ValidationError):
        validate(cert, VERSIONS[-1])


def test_custom_kinds_are_all_covered() -> None:
    """Every kind the examples render has a schema (core or transcribed CRD)."""
    for example in example_ids():
        for obj in render_example(example):
            key = (obj["apiVersion"], obj["kind"])
            if key not in CRD_SCHEMAS:
                validate(obj, VERSIONS[0])  # SchemaNotFoundError would surface here


#: Options the examples do not exercise; each variant must render valid objects too.
VARIANTS = {
    "chp-load-balancer": "proxy: {kind: chp}\nkubernetes: {access: {kind: load-balancer,"
    " load_balancer_source_ranges: [203.0.113.0/24, '2001:db8::/32']}}",
    "ingress-own-tls": "kubernetes: {access: {kind: ingress, host: a.example.org,"
    " ingress: {class_name: null, cert_manager_issuer: null, tls_secret_name: my-tls}}}",
    "gke-own-client": "kubernetes: {access: {kind: gke-ingress, host: a.example.org,"
    " gke: {oauth_client_secret: iap-client, https_redirect: false, managed_certificate: false}}}",
    "no-namespace-no-policies": "kubernetes: {create_namespace: false, network: {policies: false}}",
    "shared-bucket-identity": "kubernetes: {users: {workload_identity: u@p.iam.example},"
    " storage: {kind: gcsfuse, mode: shared-bucket, bucket: team-data}}",
    "gpu-placeholders": "profiles: [{slug: g, display_name: G, gpus: 1, cpu: 4, memory: 8G}]\n"
    "kubernetes: {profiles: {g: {gpu_accelerator: nvidia-l4, tolerations: [{key: pool,"
    " operator: Equal, value: gpu, effect: NoExecute, toleration_seconds: 30}]}},"
    " placeholders: {replicas: 3}, prepuller: {enabled: true, extra_images: [busybox:1]}}",
    "postgres-sa-annotations": "kubernetes: {hub: {database: {kind: postgres, secret_name: db},"
    " service_account_annotations: {iam.gke.io/gcp-service-account: hub@p.iam.gserviceaccount.com},"
    " node_selector: {pool: system}}}",
    "two-nfs-exports": "profiles: [{slug: a, display_name: A}, {slug: b, display_name: B}]\n"
    "kubernetes: {storage: {kind: nfs, server: n1, path: /x},"
    " profiles: {b: {storage: {kind: nfs, server: n2, path: /y}}}}",
}


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_variants_validate(variant: str) -> None:
    from labfleet.config.load import parse_text
    from labfleet.kube.render import render_objects
    from tests.kube.test_render_helpers import FIXED_SECRETS

    objects = render_objects(parse_text(VARIANTS[variant]), FIXED_SECRETS)
    for version in (VERSIONS[0], VERSIONS[-1]):
        for obj in objects:
            validate(obj, version)


@pytest.mark.parametrize("example", ["google-hardened", "minimal"])
def test_per_user_namespace_objects_validate(example: str) -> None:
    from labfleet.config.load import parse_text
    from labfleet.kube.user_namespace import user_namespace_objects

    config = load_example(example)
    if config.kubernetes.users.namespaces == "shared":
        config = parse_text(
            "kubernetes: {users: {namespaces: per-user,"
            " workload_identity: '{user_slug}@p.iam.gserviceaccount.com'}}"
        )
    for username in ("alice", "Ädmin@Example.org", "x" * 80):
        objects = user_namespace_objects(config, username)
        assert {o["kind"] for o in objects} >= {"ServiceAccount", "NetworkPolicy"}
        for version in VERSIONS:
            for obj in objects:
                validate(obj, version)
