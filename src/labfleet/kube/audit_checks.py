"""Warnings for configs that render and apply, then fail their users on a real cluster (pure).

Each one was found by auditing the examples against the setups they replace:

* an OAuth sign-in (GitHub, Google, OIDC) over plain HTTP: the provider's
  code and the hub's session cookie cross the network in the clear (and
  GitHub refuses non-localhost ``http://`` callback URLs for new apps);
* an NFS server given by a cluster DNS name: the *kubelet* mounts NFS, on
  the node, whose resolver does not know cluster DNS on most clusters, so
  the mount hangs in ``ContainerCreating`` (LSST's setup warns about this);
* named servers sharing one ReadWriteOnce claim: a user's second server
  lands on another node and waits forever on "Multi-Attach error".
"""

from __future__ import annotations

import ipaddress

from labfleet.config.kube import NfsStorage, PvcStorage
from labfleet.config.model import FleetConfig
from labfleet.kube import load_balancer_tls
from labfleet.kube.backup_cronjob import backup_warnings

OAUTH_KINDS = ("github", "google", "oidc")


def _plain_http(config: FleetConfig) -> str | None:
    """How browsers reach the hub without TLS, with the fix; None when they use https."""
    access = config.kubernetes.access
    if access.kind == "load-balancer" and not load_balancer_tls.public_https(config):
        return (
            "a load balancer without TLS: set kubernetes.access.load_balancer.tls_secret "
            "(a kubernetes.io/tls Secret the proxy serves) or "
            "tls_terminated_by_load_balancer with the provider's certificate annotations"
        )
    if access.kind == "ingress" and not access.ingress.tls:
        return "an ingress with tls: false: set kubernetes.access.ingress.tls: true"
    return None


def oauth_over_plain_http(config: FleetConfig) -> list[str]:
    if config.auth.kind not in OAUTH_KINDS:
        return []
    how = _plain_http(config)
    if how is None:
        return []
    return [
        f"auth.kind {config.auth.kind} signs users in over plain HTTP through {how}; the "
        "OAuth code and the session cookie would travel unencrypted"
    ]


def sign_in_over_plain_http(config: FleetConfig) -> list[str]:
    """For ``labfleet check``: the cluster's access path if the file sets ``kubernetes:``,
    else ``labfleet up`` (HTTPS from ``tls:``, or a reverse proxy in ``proxy.trusted_proxies``)."""
    if "kubernetes" in config.model_fields_set:
        return oauth_over_plain_http(config)
    if config.auth.kind not in OAUTH_KINDS or config.tls is not None:
        return []
    if config.proxy.trusted_proxies:
        return []  # an HTTPS reverse proxy in front (its TLS is not ours to see)
    return [
        f"auth.kind {config.auth.kind} signs users in over plain HTTP under labfleet up: add "
        "a tls: section (docs/operating.md) or serve it behind an HTTPS reverse proxy listed "
        "in proxy.trusted_proxies"
    ]


def _is_address(server: str) -> bool:
    try:
        ipaddress.ip_address(server.strip("[]"))
    except ValueError:
        return False
    return True


def nfs_by_cluster_dns(config: FleetConfig) -> list[str]:
    found = []
    for storage in config.kubernetes.all_storages():
        if not isinstance(storage, NfsStorage) or _is_address(storage.server):
            continue
        if storage.server.endswith((".svc", ".svc.cluster.local", ".cluster.local")):
            found.append(
                f"NFS server {storage.server} is a cluster DNS name: the kubelet mounts NFS on "
                "the node, which cannot resolve cluster DNS on most clusters (the pod hangs in "
                "ContainerCreating); use the Service's ClusterIP address instead"
            )
    return found


def shared_rwo_claims(config: FleetConfig) -> list[str]:
    if not config.servers.named_servers:
        return []
    kube = config.kubernetes
    shared: list[tuple[PvcStorage, list[str]]] = []
    for slug in [p.slug for p in config.profiles]:
        storage = kube.storage_for(slug)
        if not isinstance(storage, PvcStorage) or storage.access_mode == "ReadWriteMany":
            continue
        if storage.claim_per != "user":
            continue
        entry = next((e for e in shared if e[0] == storage), None)
        if entry is None:
            shared.append((storage, [slug]))
        else:
            entry[1].append(slug)
    return [
        f"profiles {', '.join(slugs)}: named servers share one {storage.access_mode} claim per "
        "user; a second server on another node hangs on 'Multi-Attach error'. Set claim_per: "
        "server on that storage (one volume per server) or access_mode: ReadWriteMany"
        for storage, slugs in shared
    ]


def services_without_image(config: FleetConfig) -> list[str]:
    return [
        f"services: {entry.name} has no image, so it runs only under labfleet up, not on the "
        "cluster; give it an image to run it beside the hub"
        for entry in config.services
        if not entry.image
    ]


def check_warnings(config: FleetConfig) -> list[str]:
    """What ``labfleet check`` adds: sign-in over HTTP, and for cluster files the volumes."""
    found = sign_in_over_plain_http(config)
    if "kubernetes" in config.model_fields_set:
        found += nfs_by_cluster_dns(config) + shared_rwo_claims(config)
    return found


def audit_warnings(config: FleetConfig) -> list[str]:
    return [
        *oauth_over_plain_http(config),
        *nfs_by_cluster_dns(config),
        *shared_rwo_claims(config),
        *backup_warnings(config),
        *services_without_image(config),
    ]
