"""Warm capacity: an image prepuller DaemonSet and low-priority user placeholders.

Both only *prepare* nodes (images pulled, room held); neither runs user code.
Placeholders run the pause image at a negative priority, so a real user's
pod (priority 0) evicts one instead of waiting for a new node.
"""

from __future__ import annotations

from typing import Any

from labfleet.config.kube import KubeProfile
from labfleet.config.model import FleetConfig
from labfleet.kube.images import pull_secret_refs, rewrite_image
from labfleet.kube.meta import (
    COMPONENT_PLACEHOLDER,
    COMPONENT_PREPULLER,
    Manifest,
    labels,
    manifest,
    metadata,
    names_of,
    selector,
)
from labfleet.kube.quantities import cpu_quantity, memory_quantity
from labfleet.kube.security import NOBODY_UID, container_security_context, pod_security_context
from labfleet.kube.spawner_settings import accelerator_scheduling

_TINY = {"requests": {"cpu": "1m", "memory": "8Mi"}, "limits": {"cpu": "100m", "memory": "64Mi"}}


def profile_images(config: FleetConfig) -> list[str]:
    kube = config.kubernetes
    images: list[str] = []
    for image in [
        *(p.image or kube.users.image for p in config.profiles),
        *kube.prepuller.extra_images,
    ]:
        rewritten = rewrite_image(image, kube.images)
        if rewritten not in images:
            images.append(rewritten)
    return images


def _all_tolerations(config: FleetConfig) -> list[dict[str, Any]]:
    """Tolerate every profile's taints, so images reach GPU/TPU nodes too."""
    found: list[dict[str, Any]] = []
    for profile in config.profiles:
        extra = config.kubernetes.profiles.get(profile.slug, KubeProfile())
        _, tolerations, _ = accelerator_scheduling(profile, extra)
        for toleration in tolerations:
            if toleration not in found:
                found.append(toleration)
    return found


def prepuller(config: FleetConfig) -> list[Manifest]:
    kube = config.kubernetes
    if not kube.prepuller.enabled:
        return []
    names = names_of(config)
    # Each image runs once as an init container that exits at once: the pull is the point.
    init = [
        {
            "name": f"pull-{index}",
            "image": image,
            "imagePullPolicy": "IfNotPresent",
            "command": ["/bin/sh", "-c", "echo pulled"],
            "resources": _TINY,
            "securityContext": container_security_context(),
        }
        for index, image in enumerate(profile_images(config))
    ]
    pod_spec: dict[str, Any] = {
        "automountServiceAccountToken": False,
        "securityContext": pod_security_context(NOBODY_UID, NOBODY_UID),
        "initContainers": init,
        "containers": [
            {
                "name": "pause",
                "image": rewrite_image(kube.prepuller.pause_image, kube.images),
                "resources": _TINY,
                "securityContext": container_security_context(),
            }
        ],
        "tolerations": _all_tolerations(config),
        "terminationGracePeriodSeconds": 0,
    }
    if kube.images.pull_secrets:
        pod_spec["imagePullSecrets"] = pull_secret_refs(kube.images)
    spec = {
        "selector": {"matchLabels": selector(config, COMPONENT_PREPULLER)},
        "updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": "100%"}},
        "template": {"metadata": {"labels": labels(config, COMPONENT_PREPULLER)}, "spec": pod_spec},
    }
    return [
        manifest(
            "apps/v1",
            "DaemonSet",
            metadata(config, f"{names.instance}-image-prepuller", COMPONENT_PREPULLER),
            spec=spec,
        )
    ]


def placeholder_priority_class_name(config: FleetConfig) -> str:
    return f"{names_of(config).cluster_scoped_prefix}-user-placeholder"


def placeholders(config: FleetConfig) -> list[Manifest]:
    kube = config.kubernetes
    section = kube.placeholders
    if section.replicas == 0:
        return []
    names = names_of(config)
    slug = section.profile or config.default_profile().slug
    profile = next(p for p in config.profiles if p.slug == slug)
    extra = kube.profiles.get(slug, KubeProfile())
    node_selector, tolerations, extended = accelerator_scheduling(profile, extra)
    requests: dict[str, str] = {
        "cpu": cpu_quantity(profile.cpu_guarantee or profile.cpu or 0.1),
        "memory": memory_quantity(profile.memory_guarantee or profile.memory or 256 * 2**20),
    }
    resources: dict[str, Any] = {"requests": requests}
    if extended:
        resources["requests"].update({k: str(v) for k, v in extended.items()})
        resources["limits"] = {k: str(v) for k, v in extended.items()}
    priority_name = placeholder_priority_class_name(config)
    priority = manifest(
        "scheduling.k8s.io/v1",
        "PriorityClass",
        metadata(config, priority_name, COMPONENT_PLACEHOLDER, namespaced=False),
        value=section.priority,
        globalDefault=False,
        preemptionPolicy="Never",
        description="labfleet user placeholders: evicted as soon as a real user needs the room",
    )
    pod_spec: dict[str, Any] = {
        "automountServiceAccountToken": False,
        "priorityClassName": priority_name,
        "securityContext": pod_security_context(NOBODY_UID, NOBODY_UID),
        "containers": [
            {
                "name": "pause",
                "image": rewrite_image(kube.prepuller.pause_image, kube.images),
                "resources": resources,
                "securityContext": container_security_context(),
            }
        ],
        "terminationGracePeriodSeconds": 0,
    }
    if node_selector:
        pod_spec["nodeSelector"] = node_selector
    if tolerations:
        pod_spec["tolerations"] = tolerations
    if kube.images.pull_secrets:
        pod_spec["imagePullSecrets"] = pull_secret_refs(kube.images)
    deployment = manifest(
        "apps/v1",
        "Deployment",
        metadata(config, f"{names.instance}-user-placeholder", COMPONENT_PLACEHOLDER),
        spec={
            "replicas": section.replicas,
            "selector": {"matchLabels": selector(config, COMPONENT_PLACEHOLDER)},
            "template": {
                "metadata": {"labels": labels(config, COMPONENT_PLACEHOLDER)},
                "spec": pod_spec,
            },
        },
    )
    return [priority, deployment]
