"""Users' identity and isolation objects: a ServiceAccount (Workload Identity), and, with
``users.namespaces: per-user``, one namespace per user with its own ServiceAccount,
NetworkPolicy, ResourceQuota and the LimitRange that lets the quota admit pods of profiles
without limits.

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
    limit_range = container_defaults(config)
    if limit_range:
        objects.append(
            manifest("v1", "LimitRange", meta("jupyter-user"), spec={"limits": [limit_range]})
        )
    return objects


#: What a container of a profile without a guarantee requests, at most.
DEFAULT_CPU_REQUEST = 0.1
DEFAULT_MEMORY_REQUEST = 256 * 2**20


def container_defaults(config: FleetConfig) -> dict[str, Any] | None:
    """LimitRange item for what the quota constrains, or None when it constrains nothing.

    A quota on ``limits.cpu``/``limits.memory`` makes the API server refuse every container
    that does not state those limits, i.e. every pod of a profile without ``cpu:`` or
    ``memory:``. The default limit is the user's quota shared by ``quota_pods`` (the whole
    quota without a pod count); the default request is small (0.1 CPU, 256Mi, or the limit
    if lower), so an unlimited profile's pod stays schedulable.
    """
    quota = config.kubernetes.users.per_user
    share = quota.quota_pods or 1
    default: dict[str, str] = {}
    request: dict[str, str] = {}
    if quota.quota_cpu is not None:
        millis = max(1, int(quota.quota_cpu * 1000) // share)
        default["cpu"] = cpu_quantity(millis / 1000)
        request["cpu"] = cpu_quantity(min(millis / 1000, DEFAULT_CPU_REQUEST))
    if quota.quota_memory is not None:
        size = max(1, quota.quota_memory // share)
        default["memory"] = memory_quantity(size)
        request["memory"] = memory_quantity(min(size, DEFAULT_MEMORY_REQUEST))
    if not default:
        return None
    return {"type": "Container", "default": default, "defaultRequest": request}
