"""The resource kinds the Kubernetes API double serves.

Only kinds that labfleet renders or that KubeSpawner touches are listed: a
request for anything else gets the same 404 a real API server gives for an
unknown resource. Custom resources (GKE, cert-manager) are served without a
schema, as on a cluster where their CRDs are installed.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Kind:
    group: str
    version: str
    kind: str
    plural: str
    namespaced: bool
    #: False for custom resources: kubernetes-validate has no schema for them.
    has_schema: bool = True
    #: The name must be a DNS-1123 label (63 chars, no dots) rather than a subdomain.
    label_name: bool = False

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def list_kind(self) -> str:
        return f"{self.kind}List"


KINDS: tuple[Kind, ...] = (
    Kind("", "v1", "Namespace", "namespaces", False, label_name=True),
    Kind("", "v1", "ServiceAccount", "serviceaccounts", True),
    Kind("", "v1", "Secret", "secrets", True),
    Kind("", "v1", "ConfigMap", "configmaps", True),
    Kind("", "v1", "PersistentVolumeClaim", "persistentvolumeclaims", True),
    Kind("", "v1", "PersistentVolume", "persistentvolumes", False),
    Kind("", "v1", "Service", "services", True, label_name=True),
    Kind("", "v1", "Pod", "pods", True),
    Kind("", "v1", "Event", "events", True),
    Kind("", "v1", "Endpoints", "endpoints", True),
    Kind("", "v1", "ResourceQuota", "resourcequotas", True),
    Kind("", "v1", "LimitRange", "limitranges", True),
    Kind("apps", "v1", "Deployment", "deployments", True),
    Kind("apps", "v1", "DaemonSet", "daemonsets", True),
    Kind("apps", "v1", "StatefulSet", "statefulsets", True),
    Kind("apps", "v1", "ReplicaSet", "replicasets", True),
    Kind("batch", "v1", "CronJob", "cronjobs", True),
    Kind("batch", "v1", "Job", "jobs", True),
    Kind("rbac.authorization.k8s.io", "v1", "Role", "roles", True),
    Kind("rbac.authorization.k8s.io", "v1", "RoleBinding", "rolebindings", True),
    Kind("rbac.authorization.k8s.io", "v1", "ClusterRole", "clusterroles", False),
    Kind("rbac.authorization.k8s.io", "v1", "ClusterRoleBinding", "clusterrolebindings", False),
    Kind("networking.k8s.io", "v1", "NetworkPolicy", "networkpolicies", True),
    Kind("networking.k8s.io", "v1", "Ingress", "ingresses", True),
    Kind("policy", "v1", "PodDisruptionBudget", "poddisruptionbudgets", True),
    Kind("scheduling.k8s.io", "v1", "PriorityClass", "priorityclasses", False),
    Kind("storage.k8s.io", "v1", "StorageClass", "storageclasses", False),
    Kind("networking.gke.io", "v1", "ManagedCertificate", "managedcertificates", True, False),
    Kind("cloud.google.com", "v1", "BackendConfig", "backendconfigs", True, False),
    Kind("networking.gke.io", "v1beta1", "FrontendConfig", "frontendconfigs", True, False),
    Kind("cert-manager.io", "v1", "Issuer", "issuers", True, False),
    Kind("cert-manager.io", "v1", "ClusterIssuer", "clusterissuers", False, False),
    Kind("cert-manager.io", "v1", "Certificate", "certificates", True, False),
)

BY_PATH: dict[tuple[str, str, str], Kind] = {(k.group, k.version, k.plural): k for k in KINDS}
BY_KIND: dict[tuple[str, str], Kind] = {(k.api_version, k.kind): k for k in KINDS}


def groups() -> dict[str, list[str]]:
    """API group name -> served versions (for the discovery endpoints)."""
    out: dict[str, list[str]] = {}
    for k in KINDS:
        versions = out.setdefault(k.group, [])
        if k.version not in versions:
            versions.append(k.version)
    return out
