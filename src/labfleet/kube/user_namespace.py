"""Users' identity and isolation objects: a ServiceAccount (Workload Identity), and, with
``users.namespaces: per-user``, one namespace per user with its own ServiceAccount,
NetworkPolicy and ResourceQuota.

Pure builders; :class:`labfleet.kube.spawner.LabfleetKubeSpawner` creates the
per-user objects before the first spawn; deleting the user keeps the namespace
unless ``kubernetes.users.delete_data_with_user`` opts in.
"""

from __future__ import annotations

from typing import Any

from labfleet.config.model import FleetConfig
from labfleet.kube.meta import (
    COMPONENT_USER,
    USER_NAMESPACE_OF,
    Manifest,
    labels,
    manifest,
    metadata,
    names_of,
)
from labfleet.kube.network import user_policy_spec
from labfleet.kube.quantities import cpu_quantity, memory_quantity
from labfleet.naming import user_slug

#: The ServiceAccount users' pods run as inside their own namespace.
USER_SERVICE_ACCOUNT = "jupyter-user"
WORKLOAD_IDENTITY_ANNOTATION = "iam.gke.io/gcp-service-account"


def user_namespace_template(config: FleetConfig) -> str:
    """KubeSpawner ``user_namespace_template`` with only ``{user_slug}`` left to expand."""
    kube = config.kubernetes
    return kube.users.per_user.template.replace("{namespace}", kube.namespace)


def user_namespace_name(config: FleetConfig, username: str) -> str:
    return user_namespace_template(config).replace("{user_slug}", user_slug(username))


def user_namespace_labels(config: FleetConfig) -> dict[str, str]:
    """Labels of every per-user namespace: selectable by policies, Pod Security enforced."""
    out = labels(config, COMPONENT_USER)
    out[USER_NAMESPACE_OF] = config.name
    out["pod-security.kubernetes.io/enforce"] = "restricted"
    out["pod-security.kubernetes.io/enforce-version"] = "latest"
    return out


def shared_users_service_account(config: FleetConfig) -> list[Manifest]:
    """In the shared namespace, one ServiceAccount for all users, only for Workload Identity."""
    users = config.kubernetes.users
    if users.namespaces != "shared" or users.workload_identity is None:
        return []
    meta = metadata(
        config,
        names_of(config).users,
        COMPONENT_USER,
        annotations={WORKLOAD_IDENTITY_ANNOTATION: users.workload_identity},
    )
    return [manifest("v1", "ServiceAccount", meta, automountServiceAccountToken=False)]


def users_service_account_name(config: FleetConfig) -> str | None:
    users = config.kubernetes.users
    if users.namespaces == "per-user":
        return USER_SERVICE_ACCOUNT
    if users.workload_identity is not None:
        return names_of(config).users
    return None


def user_namespace_objects(config: FleetConfig, username: str) -> list[Manifest]:
    """ServiceAccount, NetworkPolicy and ResourceQuota inside one user's namespace."""
    return user_namespace_objects_for_slug(config, user_slug(username))


def user_namespace_objects_for_slug(config: FleetConfig, slug: str) -> list[Manifest]:
    """As :func:`user_namespace_objects`; ``slug="{user_slug}"`` gives a spawner template."""
    users = config.kubernetes.users
    namespace = user_namespace_template(config).replace("{user_slug}", slug)

    def meta(name: str, annotations: dict[str, str] | None = None) -> dict[str, Any]:
        out = metadata(config, name, COMPONENT_USER, annotations=annotations)
        out["namespace"] = namespace
        return out

    annotations = None
    if users.workload_identity is not None:
        identity = users.workload_identity.replace("{user_slug}", slug)
        annotations = {WORKLOAD_IDENTITY_ANNOTATION: identity}
    objects = [
        manifest(
            "v1",
            "ServiceAccount",
            meta(USER_SERVICE_ACCOUNT, annotations),
            automountServiceAccountToken=False,
        ),
    ]
    if config.kubernetes.network.policies:
        objects.append(
            manifest(
                "networking.k8s.io/v1",
                "NetworkPolicy",
                meta("jupyter-user"),
                spec=user_policy_spec(config, other_namespace=True),
            )
        )
    quota = users.per_user
    hard: dict[str, str] = {}
    if quota.quota_cpu is not None:
        hard["limits.cpu"] = cpu_quantity(quota.quota_cpu)
    if quota.quota_memory is not None:
        hard["limits.memory"] = memory_quantity(quota.quota_memory)
    if quota.quota_pods is not None:
        hard["pods"] = str(quota.quota_pods)
    if hard:
        objects.append(manifest("v1", "ResourceQuota", meta("jupyter-user"), spec={"hard": hard}))
    return objects
