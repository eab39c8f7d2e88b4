"""How browsers reach the proxy: ClusterIP, LoadBalancer, Ingress + cert-manager, or GKE.

GKE (seeds 000/001): an external HTTP(S) load balancer from a GKE Ingress,
a reserved static IP, a Google-managed certificate, HTTP->HTTPS redirect
(FrontendConfig) and Identity-Aware Proxy enabled on the backend
(BackendConfig). Everything the Terraform + Helm seeds did in ~6 commands and
console clicks is rendered from ``kubernetes.access``.
"""

from __future__ import annotations

import json
from typing import Any

from labfleet.config.model import FleetConfig
from labfleet.kube import load_balancer_tls
from labfleet.kube.meta import COMPONENT_PROXY, Manifest, manifest, metadata, names_of
from labfleet.kube.proxy import public_service

LETSENCRYPT_SERVER = "https://acme-v02.api.letsencrypt.org/directory"


def _backend(service: str) -> dict[str, Any]:
    return {"service": {"name": service, "port": {"name": "http"}}}


def _rule(host: str, service: str) -> dict[str, Any]:
    return {
        "host": host,
        "http": {"paths": [{"path": "/", "pathType": "Prefix", "backend": _backend(service)}]},
    }


def plain_ingress(config: FleetConfig) -> list[Manifest]:
    """Ingress (ingress-nginx or any class) with TLS from cert-manager (seed 003)."""
    names = names_of(config)
    access = config.kubernetes.access
    options = access.ingress
    assert access.host is not None  # checked by AccessSection
    annotations = dict(options.annotations)
    spec: dict[str, Any] = {"rules": [_rule(access.host, names.proxy_public)]}
    if options.class_name:
        spec["ingressClassName"] = options.class_name
    objects: list[Manifest] = []
    if options.tls:
        secret = options.tls_secret_name or f"{names.instance}-tls"
        spec["tls"] = [{"hosts": [access.host], "secretName": secret}]
        if options.cert_manager_issuer:
            annotations["cert-manager.io/cluster-issuer"] = options.cert_manager_issuer
    meta = metadata(config, names.instance, COMPONENT_PROXY, annotations=annotations or None)
    objects.append(manifest("networking.k8s.io/v1", "Ingress", meta, spec=spec))
    if options.acme_email and options.cert_manager_issuer:
        objects.append(letsencrypt_issuer(config, options.cert_manager_issuer, options.acme_email))
    return objects


def letsencrypt_issuer(config: FleetConfig, name: str, email: str) -> Manifest:
    """A cert-manager ClusterIssuer answering HTTP-01 challenges through the Ingress."""
    solver: dict[str, Any] = {"http01": {"ingress": {}}}
    class_name = config.kubernetes.access.ingress.class_name
    if class_name:
        solver["http01"]["ingress"]["ingressClassName"] = class_name
    spec = {
        "acme": {
            "server": LETSENCRYPT_SERVER,
            "email": email,
            "privateKeySecretRef": {"name": f"{name}-account-key"},
            "solvers": [solver],
        }
    }
    meta = metadata(config, name, COMPONENT_PROXY, namespaced=False)
    return manifest("cert-manager.io/v1", "ClusterIssuer", meta, spec=spec)


def gke_names(config: FleetConfig) -> dict[str, str]:
    instance = names_of(config).instance
    return {
        "backend": f"{instance}-backend",
        "frontend": f"{instance}-frontend",
        "certificate": f"{instance}-cert",
        "ingress": instance,
    }


def gke_service_annotations(config: FleetConfig) -> dict[str, str]:
    """Container-native load balancing (NEG) and our BackendConfig on the proxy Service."""
    return {
        "cloud.google.com/neg": json.dumps({"ingress": True}),
        "cloud.google.com/backend-config": json.dumps({"default": gke_names(config)["backend"]}),
    }


def gke_ingress(config: FleetConfig) -> list[Manifest]:
    names = names_of(config)
    access = config.kubernetes.access
    gke = access.gke
    assert access.host is not None
    gnames = gke_names(config)
    objects: list[Manifest] = []

    backend_spec: dict[str, Any] = {
        # the load balancer probes the hub's health endpoint through the proxy
        "healthCheck": {
            "type": "HTTP",
            "requestPath": f"{config.hub.base_url}hub/health",
            "port": 8000,
            "checkIntervalSec": 15,
        },
        "timeoutSec": 3600,  # websockets (kernels) stay open for a long time
    }
    if gke.iap:
        iap: dict[str, Any] = {"enabled": True}
        if gke.oauth_client_secret:
            iap["oauthclientCredentials"] = {"secretName": gke.oauth_client_secret}
        backend_spec["iap"] = iap
    objects.append(
        manifest(
            "cloud.google.com/v1",
            "BackendConfig",
            metadata(config, gnames["backend"], COMPONENT_PROXY),
            spec=backend_spec,
        )
    )

    annotations = {"kubernetes.io/ingress.class": "gce"}
    if gke.static_ip_name:
        annotations["kubernetes.io/ingress.global-static-ip-name"] = gke.static_ip_name
    if gke.managed_certificate:
        annotations["networking.gke.io/managed-certificates"] = gnames["certificate"]
        objects.append(
            manifest(
                "networking.gke.io/v1",
                "ManagedCertificate",
                metadata(config, gnames["certificate"], COMPONENT_PROXY),
                spec={"domains": [access.host]},
            )
        )
    if gke.https_redirect:
        annotations["networking.gke.io/v1beta1.FrontendConfig"] = gnames["frontend"]
        objects.append(
            manifest(
                "networking.gke.io/v1beta1",
                "FrontendConfig",
                metadata(config, gnames["frontend"], COMPONENT_PROXY),
                spec={
                    "redirectToHttps": {
                        "enabled": True,
                        "responseCodeName": "MOVED_PERMANENTLY_DEFAULT",
                    }
                },
            )
        )
    spec = {
        "defaultBackend": _backend(names.proxy_public),
        "rules": [_rule(access.host, names.proxy_public)],
    }
    objects.append(
        manifest(
            "networking.k8s.io/v1",
            "Ingress",
            metadata(config, gnames["ingress"], COMPONENT_PROXY, annotations=annotations),
            spec=spec,
        )
    )
    return objects


def access_objects(config: FleetConfig) -> list[Manifest]:
    """The public proxy Service, plus whatever the access kind needs in front of it."""
    kind = config.kubernetes.access.kind
    if kind == "gke-ingress":
        return [public_service(config, gke_service_annotations(config)), *gke_ingress(config)]
    if kind == "ingress":
        return [public_service(config), *plain_ingress(config)]
    return [public_service(config)]


def first_admin_hint(config: FleetConfig) -> str | None:
    """Password accounts live on the hub's volume: create the first one with the hub's own CLI."""
    if config.auth.kind != "password":
        return None
    names = names_of(config)
    return (
        f"create the first admin: kubectl -n {names.namespace} exec -i deploy/{names.hub} -- "
        "labfleet users add admin --admin --password-stdin --data-dir /srv/labfleet"
    )


def how_to_reach(config: FleetConfig) -> str:
    """One sentence for ``labfleet apply`` to print after a rollout."""
    names = names_of(config)
    access = config.kubernetes.access
    base = config.hub.base_url
    if access.kind in ("ingress", "gke-ingress"):
        scheme = "https" if access.kind == "gke-ingress" or access.ingress.tls else "http"
        return (
            f"open {scheme}://{access.host}{base} (DNS for {access.host} must point at the ingress)"
        )
    if access.kind == "load-balancer":
        scheme = "https" if load_balancer_tls.public_https(config) else "http"
        return (
            f"open {scheme}://<EXTERNAL-IP>{base} (or a DNS name pointing at it); get the "
            f"address with: kubectl -n {names.namespace} get service {names.proxy_public}"
        )
    return (
        f"run: kubectl -n {names.namespace} port-forward service/{names.proxy_public} 8000:80 "
        f"then open http://127.0.0.1:8000{base}"
    )
