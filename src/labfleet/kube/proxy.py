"""The proxy as its own Deployment: labfleet-proxy (default) or Node CHP.

Both take CHP's flags, so the hub drives either through JupyterHub's stock
``ConfigurableHTTPProxy`` (``should_start = False``, ``api_url`` = the API
Service). The API port is reachable only from the hub (see network.py).
"""

from __future__ import annotations

from typing import Any

from labfleet.config.model import FleetConfig
from labfleet.kube import load_balancer_tls
from labfleet.kube.images import pull_secret_refs, rewrite_image
from labfleet.kube.meta import (
    COMPONENT_PROXY,
    HUB_PORT,
    PROXY_API_PORT,
    PROXY_PORT,
    Manifest,
    labels,
    manifest,
    metadata,
    names_of,
    selector,
)
from labfleet.kube.quantities import resource_requirements
from labfleet.kube.security import (
    NOBODY_UID,
    SERVICE_UID,
    container_security_context,
    pod_security_context,
)

PROXY_TOKEN_KEY = "proxy_token"  # noqa: S105 - a key name in the hub Secret


def proxy_command(config: FleetConfig) -> list[str]:
    names = names_of(config)
    hub = f"http://{names.hub}:{HUB_PORT}"
    program = "labfleet-proxy" if config.proxy.kind == "labfleet" else "configurable-http-proxy"
    command = [
        program,
        "--ip=0.0.0.0",
        f"--port={PROXY_PORT}",
        "--api-ip=0.0.0.0",
        f"--api-port={PROXY_API_PORT}",
        f"--default-target={hub}",
        f"--error-target={hub}{config.hub.base_url}hub/error",
    ]
    if config.proxy.kind == "labfleet" and config.proxy.workers > 1:
        command += ["--workers", str(config.proxy.workers)]
    if config.proxy.kind == "labfleet":
        command += [f"--trusted-proxy={network}" for network in config.proxy.trusted_proxies]
    return command + load_balancer_tls.proxy_args(config)


def proxy_image(config: FleetConfig) -> str:
    kube = config.kubernetes
    if kube.proxy.image is not None:
        image = kube.proxy.image
    elif config.proxy.kind == "labfleet":
        image = kube.hub.image  # the hub image ships labfleet-proxy
    else:
        image = kube.proxy.chp_image
    return rewrite_image(image, kube.images)


def _tcp_probe(port: str, period: int, failures: int) -> dict[str, Any]:
    return {"tcpSocket": {"port": port}, "periodSeconds": period, "failureThreshold": failures}


def deployment(config: FleetConfig) -> Manifest:
    names = names_of(config)
    kube = config.kubernetes
    # The CHP image runs as nobody; ours as the image's service user.
    uid = SERVICE_UID if config.proxy.kind == "labfleet" else NOBODY_UID
    container = {
        "name": "proxy",
        "image": proxy_image(config),
        "imagePullPolicy": kube.images.pull_policy,
        # ours: args after the hub image's tini entrypoint; CHP's image has its own entrypoint
        ("args" if config.proxy.kind == "labfleet" else "command"): proxy_command(config),
        "env": [
            {
                "name": "CONFIGPROXY_AUTH_TOKEN",
                "valueFrom": {"secretKeyRef": {"name": names.hub_secret, "key": PROXY_TOKEN_KEY}},
            }
        ],
        "ports": [
            {"name": "http", "containerPort": PROXY_PORT, "protocol": "TCP"},
            {"name": "api", "containerPort": PROXY_API_PORT, "protocol": "TCP"},
            *load_balancer_tls.proxy_ports(config),
        ],
        "resources": resource_requirements(kube.proxy.resources),
        "securityContext": container_security_context(),
        "readinessProbe": _tcp_probe("http", 5, 3),
        "livenessProbe": _tcp_probe("http", 20, 5),
        "volumeMounts": [
            {"name": "tmp", "mountPath": "/tmp"},  # noqa: S108
            *load_balancer_tls.proxy_volume_mounts(config),
        ],
    }
    pod_spec: dict[str, Any] = {
        "automountServiceAccountToken": False,
        "securityContext": pod_security_context(uid, uid),
        "containers": [container],
        "volumes": [{"name": "tmp", "emptyDir": {}}, *load_balancer_tls.proxy_volumes(config)],
    }
    if kube.images.pull_secrets:
        pod_spec["imagePullSecrets"] = pull_secret_refs(kube.images)
    spec = {
        "replicas": 1,
        # routes live in memory; the hub re-adds them, so never run two at once
        "strategy": {"type": "Recreate"},
        "selector": {"matchLabels": selector(config, COMPONENT_PROXY)},
        "template": {"metadata": {"labels": labels(config, COMPONENT_PROXY)}, "spec": pod_spec},
    }
    return manifest(
        "apps/v1", "Deployment", metadata(config, names.proxy, COMPONENT_PROXY), spec=spec
    )


def api_service(config: FleetConfig) -> Manifest:
    names = names_of(config)
    spec = {
        "type": "ClusterIP",
        "selector": selector(config, COMPONENT_PROXY),
        "ports": [{"name": "api", "port": PROXY_API_PORT, "targetPort": "api", "protocol": "TCP"}],
    }
    return manifest("v1", "Service", metadata(config, names.proxy_api, COMPONENT_PROXY), spec=spec)


def public_service(config: FleetConfig, annotations: dict[str, str] | None = None) -> Manifest:
    """The entry point for browsers; its type depends on ``kubernetes.access``."""
    names = names_of(config)
    access = config.kubernetes.access
    spec: dict[str, Any] = {
        "type": "LoadBalancer" if access.kind == "load-balancer" else "ClusterIP",
        "selector": selector(config, COMPONENT_PROXY),
        "ports": [{"name": "http", "port": 80, "targetPort": "http", "protocol": "TCP"}],
    }
    if access.kind == "load-balancer" and access.load_balancer_source_ranges:
        spec["loadBalancerSourceRanges"] = [str(n) for n in access.load_balancer_source_ranges]
    spec["ports"] = load_balancer_tls.service_ports(config) or spec["ports"]
    annotations = {**load_balancer_tls.service_annotations(config), **(annotations or {})}
    meta = metadata(config, names.proxy_public, COMPONENT_PROXY, annotations=annotations)
    return manifest("v1", "Service", meta, spec=spec)


def proxy_objects(config: FleetConfig) -> list[Manifest]:
    return [deployment(config), api_service(config)]
