"""``services:`` on Kubernetes (pure): each application as a Deployment + Service beside the hub.

One pod per service, two containers:

* ``app``: the configured image, listening on ``port`` on the pod's loopback
  as far as anyone else is concerned (its NetworkPolicy admits only the gate
  port, and only from the proxy);
* ``gate``: ``python -m labfleet.services.gate`` from the hub image, the
  JupyterHub service that signs users in through the hub and forwards to
  ``127.0.0.1:port``.

The hub knows each one as an external JupyterHub service (``url`` = this
Service, :func:`labfleet.hub.app_services.app_services`), with an API token
from a create-only Secret that both the hub and the gate read. NetworkPolicies
add what the fleet's own policies do not allow: proxy → gate, gate → hub API.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from typing import Any

from labfleet.config.model import FleetConfig
from labfleet.config.services import ServiceEntry
from labfleet.kube.images import pull_secret_refs, rewrite_image
from labfleet.kube.meta import (
    APPLY_CREATE_ONLY,
    APPLY_POLICY,
    COMPONENT_HUB,
    COMPONENT_PROXY,
    HUB_PORT,
    Manifest,
    labels,
    manifest,
    metadata,
    names_of,
    selector,
)
from labfleet.kube.security import SERVICE_UID, container_security_context, pod_security_context
from labfleet.secrets import HubSecrets

COMPONENT_SERVICE = "service"
GATE_PORT = 8000
TOKEN_KEY = "api_token"  # noqa: S105 - a key name in the service's Secret
TOKEN_ENV_PREFIX = "LABFLEET_SERVICE_TOKEN_"  # noqa: S105 - a variable name prefix
SERVICE_LABEL = "labfleet.io/service"


def object_name(config: FleetConfig, entry: ServiceEntry) -> str:
    """``<instance>-svc-<name>``, shortened with a hash where it would pass 63 characters."""
    name = f"{names_of(config).instance}-svc-{entry.name}"
    if len(name) <= 63:
        return name
    digest = hashlib.sha256(name.encode()).hexdigest()[:8]
    return f"{name[:54].rstrip('-')}-{digest}"


def token_env(entry: ServiceEntry) -> str:
    return TOKEN_ENV_PREFIX + entry.name.upper().replace("-", "_")


def service_url(config: FleetConfig, entry: ServiceEntry) -> str:
    return names_of(config).service_url(object_name(config, entry), GATE_PORT)


def kube_entries(config: FleetConfig) -> list[ServiceEntry]:
    """The services that run on a cluster (those with an image)."""
    return [entry for entry in config.services if entry.image]


def _token(secrets: HubSecrets, entry: ServiceEntry) -> str:
    """Derived from this render's secrets; create-only keeps the cluster's first value."""
    key = secrets.supervisor_token.encode()
    return hmac.new(key, f"labfleet-service:{entry.name}".encode(), hashlib.sha256).hexdigest()


def _token_ref(config: FleetConfig, entry: ServiceEntry) -> dict[str, Any]:
    return {"secretKeyRef": {"name": object_name(config, entry), "key": TOKEN_KEY}}


def hub_token_env(config: FleetConfig) -> list[dict[str, Any]]:
    """Environment of the hub container: each service's API token (kube/hub.py adds it)."""
    return [
        {"name": token_env(entry), "valueFrom": _token_ref(config, entry)}
        for entry in kube_entries(config)
    ]


def _labels(config: FleetConfig, entry: ServiceEntry) -> dict[str, str]:
    return {**labels(config, COMPONENT_SERVICE), SERVICE_LABEL: entry.name}


def _selector(config: FleetConfig, entry: ServiceEntry) -> dict[str, str]:
    return {**selector(config, COMPONENT_SERVICE), SERVICE_LABEL: entry.name}


def _resources(entry: ServiceEntry) -> dict[str, Any]:
    limits: dict[str, Any] = {}
    if entry.resources.cpu is not None:
        limits["cpu"] = str(entry.resources.cpu)
    if entry.resources.memory is not None:
        limits["memory"] = entry.resources.memory
    return {"limits": limits, "requests": dict(limits)} if limits else {}


def _gate_env(config: FleetConfig, entry: ServiceEntry) -> list[dict[str, Any]]:
    names = names_of(config)
    base = config.hub.base_url
    prefix = f"{base}services/{entry.name}/"
    plain = {
        "JUPYTERHUB_SERVICE_NAME": entry.name,
        "JUPYTERHUB_CLIENT_ID": f"service-{entry.name}",
        "JUPYTERHUB_API_URL": f"http://{names.hub}:{HUB_PORT}{base}hub/api",
        "JUPYTERHUB_BASE_URL": base,
        "JUPYTERHUB_SERVICE_PREFIX": prefix,
        "JUPYTERHUB_OAUTH_CALLBACK_URL": f"{prefix}oauth_callback",
        "LABFLEET_GATE_BIND": f"http://0.0.0.0:{GATE_PORT}",
        "LABFLEET_GATE_UPSTREAM": f"http://127.0.0.1:{entry.port}",
        "HOME": "/tmp",  # noqa: S108 - read-only root filesystem; /tmp is an emptyDir
    }
    if entry.url_prefix:
        plain["LABFLEET_GATE_URL_PREFIX"] = entry.url_prefix
    env: list[dict[str, Any]] = [{"name": k, "value": v} for k, v in plain.items()]
    env.append({"name": "JUPYTERHUB_API_TOKEN", "valueFrom": _token_ref(config, entry)})
    return env


def deployment(config: FleetConfig, entry: ServiceEntry) -> Manifest:
    kube = config.kubernetes
    assert entry.image is not None
    app_env = {**entry.environment}
    app_env["LABFLEET_SERVICE_PREFIX"] = entry.url_prefix or (
        f"{config.hub.base_url}services/{entry.name}/"
    )
    app: dict[str, Any] = {
        "name": "app",
        "image": rewrite_image(entry.image, kube.images),
        "imagePullPolicy": kube.images.pull_policy,
        "env": [{"name": k, "value": v} for k, v in app_env.items()],
        "ports": [{"name": "app", "containerPort": entry.port, "protocol": "TCP"}],
        "resources": _resources(entry),
        # an image we do not know may write where it likes; it still runs non-root
        "securityContext": container_security_context(read_only_root=False),
        "volumeMounts": [{"name": "app-tmp", "mountPath": "/tmp"}],  # noqa: S108
    }
    if entry.command:
        app["command"] = list(entry.command)
    gate = {
        "name": "gate",
        "image": rewrite_image(kube.hub.image, kube.images),
        "imagePullPolicy": kube.images.pull_policy,
        "args": ["python", "-m", "labfleet.services.gate"],
        "env": _gate_env(config, entry),
        "ports": [{"name": "gate", "containerPort": GATE_PORT, "protocol": "TCP"}],
        "resources": {"requests": {"cpu": "50m", "memory": "96Mi"}, "limits": {"memory": "256Mi"}},
        "securityContext": container_security_context(),
        "readinessProbe": {"tcpSocket": {"port": "gate"}, "periodSeconds": 10},
        "volumeMounts": [{"name": "gate-tmp", "mountPath": "/tmp"}],  # noqa: S108
    }
    pod_spec: dict[str, Any] = {
        "automountServiceAccountToken": False,
        "securityContext": pod_security_context(SERVICE_UID, SERVICE_UID, SERVICE_UID),
        "containers": [app, gate],
        "volumes": [{"name": "app-tmp", "emptyDir": {}}, {"name": "gate-tmp", "emptyDir": {}}],
    }
    if kube.images.pull_secrets:
        pod_spec["imagePullSecrets"] = pull_secret_refs(kube.images)
    spec = {
        "replicas": 1,
        "selector": {"matchLabels": _selector(config, entry)},
        "template": {"metadata": {"labels": _labels(config, entry)}, "spec": pod_spec},
    }
    meta = metadata(config, object_name(config, entry), COMPONENT_SERVICE)
    meta["labels"][SERVICE_LABEL] = entry.name
    return manifest("apps/v1", "Deployment", meta, spec=spec)


def service(config: FleetConfig, entry: ServiceEntry) -> Manifest:
    spec = {
        "type": "ClusterIP",
        "selector": _selector(config, entry),
        "ports": [{"name": "gate", "port": GATE_PORT, "targetPort": "gate", "protocol": "TCP"}],
    }
    meta = metadata(config, object_name(config, entry), COMPONENT_SERVICE)
    return manifest("v1", "Service", meta, spec=spec)


def token_secret(config: FleetConfig, entry: ServiceEntry, secrets: HubSecrets) -> Manifest:
    meta = metadata(
        config,
        object_name(config, entry),
        COMPONENT_SERVICE,
        annotations={APPLY_POLICY: APPLY_CREATE_ONLY},
    )
    value = base64.b64encode(_token(secrets, entry).encode()).decode()
    return manifest("v1", "Secret", meta, type="Opaque", data={TOKEN_KEY: value})


def _peer(config: FleetConfig, component: str) -> dict[str, Any]:
    return {"podSelector": {"matchLabels": selector(config, component)}}


def network_policies(config: FleetConfig) -> list[Manifest]:
    """Added to the fleet's own (policies are a union): proxy → gate, gate → hub, no one → app."""
    if not config.kubernetes.network.policies:
        return []
    instance = names_of(config).instance
    tcp = {"protocol": "TCP"}

    def policy(name: str, component: str, spec: dict[str, Any]) -> Manifest:
        meta = metadata(config, f"{instance}-{name}", component)
        return manifest("networking.k8s.io/v1", "NetworkPolicy", meta, spec=spec)

    services = {"podSelector": {"matchLabels": selector(config, COMPONENT_SERVICE)}}
    return [
        policy(
            "services",
            COMPONENT_SERVICE,
            {
                **services,
                "policyTypes": ["Ingress"],
                "ingress": [
                    {"from": [_peer(config, COMPONENT_PROXY)], "ports": [{"port": "gate", **tcp}]}
                ],
            },
        ),
        policy(
            "services-to-hub",
            COMPONENT_HUB,
            {
                "podSelector": {"matchLabels": selector(config, COMPONENT_HUB)},
                "policyTypes": ["Ingress"],
                "ingress": [
                    {
                        "from": [{"podSelector": services["podSelector"]}],
                        "ports": [{"port": HUB_PORT, **tcp}],
                    }
                ],
            },
        ),
        policy(
            "proxy-to-services",
            COMPONENT_PROXY,
            {
                "podSelector": {"matchLabels": selector(config, COMPONENT_PROXY)},
                "policyTypes": ["Egress"],
                "egress": [
                    {
                        "to": [{"podSelector": services["podSelector"]}],
                        "ports": [{"port": GATE_PORT, **tcp}],
                    }
                ],
            },
        ),
    ]


def service_objects(config: FleetConfig, secrets: HubSecrets) -> list[Manifest]:
    """Token Secret, Deployment and Service per service with an image; their policies."""
    entries = kube_entries(config)
    if not entries:
        return []
    objects: list[Manifest] = []
    for entry in entries:
        objects += [
            token_secret(config, entry, secrets),
            service(config, entry),
            deployment(config, entry),
        ]
    return objects + network_policies(config)
