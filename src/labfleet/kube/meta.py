"""Names, labels and annotations shared by every builder.

Every object we render carries ``app.kubernetes.io/managed-by: labfleet`` and
``app.kubernetes.io/instance: <config.name>``: the apply engine prunes and
destroys by these labels (plus its inventory). Users' pods are created by
KubeSpawner, not by us, so they say ``managed-by: kubespawner`` and are never
pruned by a re-apply.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from labfleet.config.model import FleetConfig

Manifest = dict[str, Any]

PART_OF = "labfleet"
LABEL_NAME = "app.kubernetes.io/name"
LABEL_INSTANCE = "app.kubernetes.io/instance"
LABEL_COMPONENT = "app.kubernetes.io/component"
LABEL_MANAGED_BY = "app.kubernetes.io/managed-by"
LABEL_PART_OF = "app.kubernetes.io/part-of"
MANAGED_BY = "labfleet"

#: Marker for the apply engine: create the object if it is missing, but never
#: change it afterwards (the hub Secret: regenerating would log everyone out
#: and make encrypted auth state unreadable).
APPLY_POLICY = "labfleet.io/apply-policy"
APPLY_CREATE_ONLY = "create-only"
#: Marker for ``destroy``: keep this object unless ``--delete-user-data``
#: (the namespace holds users' volumes).
DESTROY_POLICY = "labfleet.io/destroy-policy"
DESTROY_KEEP_USER_DATA = "keep-unless-delete-user-data"
#: Pod template annotation that changes when the config Secret does (rolls the hub).
CONFIG_CHECKSUM = "labfleet.io/config-checksum"
#: Label on per-user namespaces, so hub/proxy policies can select them.
USER_NAMESPACE_OF = "labfleet.io/user-namespace-of"
#: Label naming the hub's namespace, so two same-named instances in different
#: namespaces never see (or prune, or destroy) each other's objects.
HUB_NAMESPACE = "labfleet.io/hub-namespace"

HUB_PORT = 8081
PROXY_PORT = 8000
PROXY_API_PORT = 8001
USER_PORT = 8888

COMPONENT_HUB = "hub"
COMPONENT_PROXY = "proxy"
COMPONENT_USER = "singleuser-server"
COMPONENT_PREPULLER = "image-prepuller"
COMPONENT_PLACEHOLDER = "user-placeholder"


@dataclass(frozen=True)
class Names:
    """Object names of one fleet; all derived from ``config.name`` (a DNS label <= 40)."""

    instance: str
    namespace: str

    @property
    def hub(self) -> str:
        return f"{self.instance}-hub"

    @property
    def hub_config(self) -> str:
        return f"{self.instance}-config"

    @property
    def hub_secret(self) -> str:
        return f"{self.instance}-hub-secret"

    @property
    def hub_db(self) -> str:
        return f"{self.instance}-hub-db"

    @property
    def proxy(self) -> str:
        return f"{self.instance}-proxy"

    @property
    def proxy_api(self) -> str:
        return f"{self.instance}-proxy-api"

    @property
    def proxy_public(self) -> str:
        return f"{self.instance}-proxy-public"

    @property
    def users(self) -> str:
        return f"{self.instance}-users"

    @property
    def cluster_scoped_prefix(self) -> str:
        """Cluster-scoped objects are shared by all namespaces: include ours."""
        return f"{self.namespace}-{self.instance}"

    def service_url(self, service: str, port: int) -> str:
        """In-cluster URL that also resolves from other (per-user) namespaces."""
        return f"http://{service}.{self.namespace}.svc:{port}"


def names_of(config: FleetConfig) -> Names:
    return Names(instance=config.name, namespace=config.kubernetes.namespace)


def labels(config: FleetConfig, component: str) -> dict[str, str]:
    return {
        LABEL_NAME: PART_OF,
        LABEL_INSTANCE: config.name,
        LABEL_COMPONENT: component,
        LABEL_MANAGED_BY: MANAGED_BY,
        HUB_NAMESPACE: config.kubernetes.namespace,
    }


def selector(config: FleetConfig, component: str) -> dict[str, str]:
    """Pod selector: stable keys only (selectors of Deployments are immutable)."""
    return {LABEL_NAME: PART_OF, LABEL_INSTANCE: config.name, LABEL_COMPONENT: component}


def user_pod_labels(config: FleetConfig) -> dict[str, str]:
    return {
        LABEL_NAME: PART_OF,
        LABEL_INSTANCE: config.name,
        LABEL_COMPONENT: COMPONENT_USER,
        LABEL_PART_OF: PART_OF,
        HUB_NAMESPACE: config.kubernetes.namespace,
    }


def metadata(
    config: FleetConfig,
    name: str,
    component: str,
    *,
    namespaced: bool = True,
    annotations: dict[str, str] | None = None,
) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name, "labels": labels(config, component)}
    if namespaced:
        meta["namespace"] = config.kubernetes.namespace
    if annotations:
        meta["annotations"] = dict(annotations)
    return meta


def manifest(api_version: str, kind: str, meta: dict[str, Any], **body: Any) -> Manifest:
    return {"apiVersion": api_version, "kind": kind, "metadata": meta, **body}
