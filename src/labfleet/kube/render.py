"""Compose every builder into the ordered manifest list of one fleet (pure).

Order is apply order: namespace and cluster-wide objects first, then
identity, configuration, storage, services, workloads, policies, ingress.
"""

from __future__ import annotations

from collections.abc import Iterable

import yaml

from labfleet.config.model import FleetConfig
from labfleet.kube import access, capacity, hub, network, proxy, storage, user_namespace
from labfleet.kube.backup_cronjob import backup_objects
from labfleet.kube.hub_secret import hub_secret
from labfleet.kube.meta import Manifest
from labfleet.kube.services import service_objects
from labfleet.secrets import HubSecrets

KIND_ORDER = [
    "Namespace",
    "PriorityClass",
    "ClusterIssuer",
    "PersistentVolume",
    "ServiceAccount",
    "ClusterRole",
    "ClusterRoleBinding",
    "Role",
    "RoleBinding",
    "ConfigMap",
    "Secret",
    "PersistentVolumeClaim",
    "BackendConfig",
    "FrontendConfig",
    "ManagedCertificate",
    "Service",
    "Deployment",
    "DaemonSet",
    "NetworkPolicy",
    "Ingress",
]


def _kind_rank(obj: Manifest) -> int:
    kind = obj["kind"]
    return KIND_ORDER.index(kind) if kind in KIND_ORDER else len(KIND_ORDER)


def render_objects(config: FleetConfig, secrets: HubSecrets) -> list[Manifest]:
    """Every object labfleet owns for ``config``, in apply order.

    ``secrets`` fills the hub Secret, which is marked create-only: the apply
    engine keeps the values already in the cluster.
    """
    objects: list[Manifest] = []
    if config.kubernetes.create_namespace and config.kubernetes.cluster_scoped:
        objects.append(hub.namespace(config))
    objects += hub.hub_objects(config)
    objects.append(hub_secret(config, secrets))
    objects += proxy.proxy_objects(config)
    objects += access.access_objects(config)
    objects += storage.nfs_objects(config)
    objects += user_namespace.shared_users_service_account(config)
    objects += network.network_policies(config)
    objects += capacity.prepuller(config)
    objects += capacity.placeholders(config)
    objects += backup_objects(config)
    objects += service_objects(config, secrets)
    return sorted(objects, key=_kind_rank)  # stable: builder order within a kind


def object_id(obj: Manifest) -> str:
    """``Kind/namespace/name`` (``Kind/name`` for cluster-scoped objects)."""
    meta = obj["metadata"]
    if "namespace" in meta:
        return f"{obj['kind']}/{meta['namespace']}/{meta['name']}"
    return f"{obj['kind']}/{meta['name']}"


def file_name(index: int, obj: Manifest) -> str:
    return f"{index:02d}-{obj['kind'].lower()}-{obj['metadata']['name']}.yaml"


def to_yaml(objects: Iterable[Manifest]) -> str:
    """Multi-document YAML, as ``kubectl apply -f`` reads it."""
    return yaml.safe_dump_all(list(objects), sort_keys=False, default_flow_style=False)
