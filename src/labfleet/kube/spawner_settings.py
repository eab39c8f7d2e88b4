"""FleetConfig -> KubeSpawner traitlets settings (pure), for the hub pod.

``labfleet.hub.settings`` merges this when ``Runtime.platform ==
"kubernetes"``. Besides ``KubeSpawner`` it returns the few ``JupyterHub`` /
``ConfigurableHTTPProxy`` traits that differ in a cluster: our spawner class,
the hub's in-cluster URL, the proxy API Service, and never stopping users'
pods when the hub restarts.
"""

from __future__ import annotations

from typing import Any

from labfleet.config.kube import KubeProfile, Toleration
from labfleet.config.model import FleetConfig
from labfleet.config.profiles import Profile
from labfleet.kube.images import rewrite_image
from labfleet.kube.meta import (
    HUB_PORT,
    LABEL_MANAGED_BY,
    PROXY_API_PORT,
    USER_PORT,
    names_of,
    user_pod_labels,
)
from labfleet.kube.security import SECCOMP_RUNTIME_DEFAULT
from labfleet.kube.storage import storage_settings
from labfleet.kube.user_namespace import (
    user_namespace_labels,
    user_namespace_objects_for_slug,
    user_namespace_template,
    users_service_account_name,
)
from labfleet.spawn.policy import profiles_setting

Settings = dict[str, dict[str, Any]]
SPAWNER_CLASS = "labfleet.kube.spawner.LabfleetKubeSpawner"
#: Pod name: ``jupyter-<user>`` or ``jupyter-<user>--<server>`` (labfleet.naming.server_slug).
POD_NAME_TEMPLATE = "jupyter-{server_slug}"
GKE_ACCELERATOR_LABEL = "cloud.google.com/gke-accelerator"
GKE_TPU_ACCELERATOR_LABEL = "cloud.google.com/gke-tpu-accelerator"
GKE_TPU_TOPOLOGY_LABEL = "cloud.google.com/gke-tpu-topology"
TPU_RESOURCE = "google.com/tpu"


def toleration_dict(toleration: Toleration) -> dict[str, Any]:
    out: dict[str, Any] = {"operator": toleration.operator}
    if toleration.key is not None:
        out["key"] = toleration.key
    if toleration.value is not None:
        out["value"] = toleration.value
    if toleration.effect is not None:
        out["effect"] = toleration.effect
    if toleration.toleration_seconds is not None:
        out["tolerationSeconds"] = toleration.toleration_seconds
    return out


def accelerator_scheduling(
    profile: Profile, extra: KubeProfile
) -> tuple[dict[str, str], list[dict[str, Any]], dict[str, int]]:
    """Node selector, tolerations and extended resources for GPUs / TPUs."""
    selector: dict[str, str] = {}
    tolerations: list[dict[str, Any]] = []
    resources: dict[str, int] = {}
    if profile.gpus:
        resources[extra.gpu_resource] = profile.gpus
        tolerations.append(
            {"key": extra.gpu_resource, "operator": "Exists", "effect": "NoSchedule"}
        )
        if extra.gpu_accelerator:
            selector[GKE_ACCELERATOR_LABEL] = extra.gpu_accelerator
    if extra.tpu is not None:
        resources[TPU_RESOURCE] = extra.tpu.chips
        tolerations.append({"key": TPU_RESOURCE, "operator": "Exists", "effect": "NoSchedule"})
        selector[GKE_TPU_ACCELERATOR_LABEL] = extra.tpu.accelerator
        selector[GKE_TPU_TOPOLOGY_LABEL] = extra.tpu.topology
    selector.update(extra.node_selector)
    tolerations += [toleration_dict(t) for t in extra.tolerations]
    return selector, tolerations, resources


def profile_override(config: FleetConfig, profile: Profile) -> dict[str, Any]:
    """Every trait a profile controls, set explicitly so switching profiles never leaks."""
    kube = config.kubernetes
    extra = kube.profiles.get(profile.slug, KubeProfile())
    selector, tolerations, resources = accelerator_scheduling(profile, extra)
    override: dict[str, Any] = {
        "image": rewrite_image(profile.image or kube.users.image, kube.images),
        "cpu_limit": profile.cpu,
        "cpu_guarantee": profile.cpu_guarantee,
        "mem_limit": profile.memory,
        "mem_guarantee": profile.memory_guarantee,
        # extended resources: requests must equal limits
        "extra_resource_limits": {k: str(v) for k, v in resources.items()},
        "extra_resource_guarantees": {k: str(v) for k, v in resources.items()},
        "node_selector": selector,
        "tolerations": tolerations,
        "environment": {**kube.users.environment, **extra.environment},
    }
    override.update(storage_settings(config, kube.storage_for(profile.slug)))
    return override


def profile_overrides(config: FleetConfig) -> dict[str, dict[str, Any]]:
    """Slug -> traits, applied by LabfleetKubeSpawner once policy allowed the profile.

    Not KubeSpawner's ``profile_list``: the form and the checks are labfleet's
    (ProfileChoiceMixin), identical on one machine and on a cluster.
    """
    return {profile.slug: profile_override(config, profile) for profile in config.profiles}


def security_settings(config: FleetConfig) -> dict[str, Any]:
    """Pod Security "restricted" for every user pod; no Kubernetes API token inside."""
    users = config.kubernetes.users
    return {
        "uid": users.uid,
        "gid": users.gid,
        "fs_gid": users.fs_gid,
        "privileged": False,
        "allow_privilege_escalation": False,
        "automount_service_account_token": False,
        "pod_security_context": {
            "runAsNonRoot": True,
            "seccompProfile": dict(SECCOMP_RUNTIME_DEFAULT),
        },
        "container_security_context": {
            "runAsNonRoot": True,
            "allowPrivilegeEscalation": False,
            "capabilities": {"drop": ["ALL"]},
            "seccompProfile": dict(SECCOMP_RUNTIME_DEFAULT),
        },
    }


def namespace_settings(config: FleetConfig) -> dict[str, Any]:
    kube = config.kubernetes
    if kube.users.namespaces == "shared":
        return {"namespace": kube.namespace, "enable_user_namespaces": False}
    return {
        "namespace": kube.namespace,
        "enable_user_namespaces": True,
        "user_namespace_template": user_namespace_template(config),
        "user_namespace_labels": user_namespace_labels(config),
        "labfleet_user_namespace_objects": user_namespace_objects_for_slug(config, "{user_slug}"),
        "labfleet_delete_user_namespace": kube.users.delete_data_with_user,
    }


def build_kubespawner_settings(config: FleetConfig) -> Settings:
    kube = config.kubernetes
    names = names_of(config)
    default_profile = config.default_profile()
    spawner: dict[str, Any] = {
        "cmd": list(kube.users.cmd),
        "port": USER_PORT,
        "pod_name_template": POD_NAME_TEMPLATE,
        "common_labels": {**user_pod_labels(config), LABEL_MANAGED_BY: "kubespawner"},
        "image_pull_policy": kube.images.pull_policy,
        "image_pull_secrets": list(kube.images.pull_secrets),
        "service_account": users_service_account_name(config),
        "events_enabled": True,
        "delete_stopped_pods": True,
        # users' files outlive their servers and, unless the config opts in, their hub
        # account (users.delete_data_with_user; docs/kubernetes.md)
        "delete_pvc": kube.users.delete_data_with_user,
        "services_enabled": False,
        "labfleet_profiles": profiles_setting(config.profiles),
        "labfleet_profile_overrides": profile_overrides(config),
        **security_settings(config),
        **namespace_settings(config),
        # what the default profile sets, before any profile is applied
        **profile_override(config, default_profile),
    }
    return {
        "JupyterHub": {
            "spawner_class": SPAWNER_CLASS,
            "hub_connect_url": names.service_url(names.hub, HUB_PORT),
            # users' pods outlive hub restarts; the hub finds them again from its database
            "cleanup_servers": False,
            "cleanup_proxy": False,
        },
        "ConfigurableHTTPProxy": {
            "api_url": names.service_url(names.proxy_api, PROXY_API_PORT),
            "should_start": False,
        },
        "KubeSpawner": spawner,
    }
