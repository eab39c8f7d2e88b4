"""lightkube resource classes for the kinds labfleet applies.

Built-in kinds come from lightkube's models; the custom resources labfleet
renders for GKE and cert-manager are registered as generic resources here,
once, so the engine can address them like any other kind.
"""

from __future__ import annotations

from typing import Any

from lightkube.core.exceptions import LoadResourceError
from lightkube.core.resource_registry import resource_registry
from lightkube.generic_resource import create_global_resource, create_namespaced_resource

from labfleet.kube.apply.refs import ManifestError, ObjectRef

#: Custom resources: (group, version, kind, plural, namespaced).
CUSTOM_KINDS: tuple[tuple[str, str, str, str, bool], ...] = (
    ("networking.gke.io", "v1", "ManagedCertificate", "managedcertificates", True),
    ("networking.gke.io", "v1beta1", "FrontendConfig", "frontendconfigs", True),
    ("cloud.google.com", "v1", "BackendConfig", "backendconfigs", True),
    ("cert-manager.io", "v1", "Issuer", "issuers", True),
    ("cert-manager.io", "v1", "ClusterIssuer", "clusterissuers", False),
    ("cert-manager.io", "v1", "Certificate", "certificates", True),
)

_registered = False


def _register_custom_kinds() -> None:
    global _registered
    if _registered:
        return
    for group, version, kind, plural, namespaced in CUSTOM_KINDS:
        if resource_registry.get(f"{group}/{version}", kind) is None:
            create = create_namespaced_resource if namespaced else create_global_resource
            create(group, version, kind, plural)
    _registered = True


def resource_class(api_version: str, kind: str) -> Any:
    """The lightkube class for ``apiVersion``/``kind`` (ManifestError if unknown)."""
    _register_custom_kinds()
    try:
        return resource_registry.load(api_version, kind)
    except (LoadResourceError, ImportError) as error:
        raise ManifestError(f"labfleet cannot apply {api_version} {kind}: {error}") from None


def resource_of(ref: ObjectRef) -> Any:
    return resource_class(ref.api_version, ref.kind)
