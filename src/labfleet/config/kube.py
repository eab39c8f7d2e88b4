"""The ``kubernetes:`` section: how the same fleet runs on a cluster.

Everything here is read only by the Kubernetes object builders
(``labfleet render/apply``) and by the hub pod's KubeSpawner settings; one
machine ignores it, so the embedded defaults stay valid without a cluster.

Per-profile scheduling (GPU/TPU node selectors, tolerations, storage) lives
in ``kubernetes.profiles.<slug>`` so that ``profiles:`` stays portable; the
slugs are cross-checked against ``profiles:`` by :func:`check_against_profiles`.
"""

from __future__ import annotations

import ipaddress
import re
import string
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, Field, ValidationInfo, field_validator, model_validator

from labfleet.config.base import Section
from labfleet.config.kube_backup import BackupSection
from labfleet.config.kube_load_balancer import LoadBalancerOptions
from labfleet.config.units import Size

DNS_LABEL = r"^[a-z]([a-z0-9-]{0,28}[a-z0-9])?$"
K8S_NAME = r"^[a-z0-9]([a-z0-9.-]{0,251}[a-z0-9])?$"
DEFAULT_HUB_IMAGE = "ghcr.io/labfleet/hub:0.1.0"
DEFAULT_USER_IMAGE = "quay.io/jupyter/minimal-notebook:python-3.12"
DEFAULT_CHP_IMAGE = "quay.io/jupyterhub/configurable-http-proxy:4.6.3"
DEFAULT_PAUSE_IMAGE = "registry.k8s.io/pause:3.10"

#: Placeholders a user-derived template may use; values come from labfleet.naming.
USER_TEMPLATE_KEYS = frozenset({"user_slug"})
SERVER_TEMPLATE_KEYS = frozenset({"user_slug", "server_slug"})
#: The cloud metadata endpoints no user may ever be allowed to reach.
METADATA_ADDRESSES = (
    ipaddress.ip_address("169.254.169.254"),
    ipaddress.ip_address("fd00:ec2::254"),
)

PullPolicy = Literal["Always", "IfNotPresent", "Never"]
IpNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


def template_keys(template: str) -> set[str]:
    """The ``{placeholders}`` of a str.format template (ValueError if malformed)."""
    keys = set()
    for _, field, spec, conversion in string.Formatter().parse(template):
        if field is None:
            continue
        if not field or spec or conversion or not field.isidentifier():
            raise ValueError(f"{template!r}: only plain placeholders like '{{user_slug}}' work")
        keys.add(field)
    return keys


def _check_template(template: str, allowed: frozenset[str], what: str) -> str:
    unknown = template_keys(template) - allowed
    if unknown:
        raise ValueError(
            f"{what} {template!r} uses {', '.join(sorted(unknown))}; "
            f"allowed placeholders: {', '.join(sorted(allowed))}"
        )
    return template


def _no_whitespace(value: str, what: str) -> str:
    if not value or any(ch.isspace() for ch in value):
        raise ValueError(f"{value!r} is not {what}")
    return value


class Toleration(Section):
    """A Kubernetes toleration (e.g. for tainted GPU or TPU node pools)."""

    key: str | None = None
    operator: Literal["Equal", "Exists"] = "Equal"
    value: str | None = None
    effect: Literal["NoSchedule", "PreferNoSchedule", "NoExecute"] | None = None
    toleration_seconds: int | None = Field(default=None, ge=0)

    @model_validator(mode="after")
    def _consistent(self) -> Toleration:
        if self.operator == "Exists" and self.value is not None:
            raise ValueError("a toleration with operator Exists takes no value")
        if self.key is None and self.operator != "Exists":
            raise ValueError("a toleration without a key needs operator: Exists")
        if self.toleration_seconds is not None and self.effect != "NoExecute":
            raise ValueError("toleration_seconds only applies to effect: NoExecute")
        return self


class NoStorage(Section):
    """Nothing persistent: the server's files live and die with the pod."""

    kind: Literal["none"]


class PvcStorage(Section):
    """One dynamically provisioned PersistentVolumeClaim per user, kept across servers."""

    kind: Literal["pvc"]
    size: Size = Field(default=10 * 2**30, description="Capacity of each user's claim.")
    storage_class: str | None = Field(default=None, description="None: the cluster default.")
    access_mode: Literal["ReadWriteOnce", "ReadWriteOncePod", "ReadWriteMany"] = "ReadWriteOnce"
    claim_prefix: str = Field(default="home", pattern=DNS_LABEL)
    claim_per: Literal["user", "server"] = Field(
        default="user",
        description="server: one claim per (named) server, <claim_prefix>-<user>--<server>, so "
        "two servers of one user never share a ReadWriteOnce volume (Multi-Attach).",
    )
    mount_path: str = Field(default="/home/jovyan", pattern=r"^/\S*$")


class NfsStorage(Section):
    """A shared NFS export; each user sees only their own sub-directory (``subPath``).

    Rendered as a PersistentVolume + ReadWriteMany claim, because inline
    ``nfs:`` volumes are forbidden by Pod Security "restricted".
    """

    kind: Literal["nfs"]
    server: str = Field(pattern=r"^[A-Za-z0-9.:-]+$")
    path: str = Field(pattern=r"^/\S*$")
    sub_path: str = Field(default="home/{user_slug}")
    capacity: Size = Field(default=2**40, description="Nominal PV size (NFS ignores it).")
    mount_path: str = Field(default="/home/jovyan", pattern=r"^/\S*$")

    @field_validator("sub_path")
    @classmethod
    def _sub_path(cls, value: str) -> str:
        _check_template(value, USER_TEMPLATE_KEYS, "sub_path")
        if value.startswith("/") or ".." in value.split("/"):
            raise ValueError(f"sub_path {value!r} must be relative and stay inside the export")
        if "{user_slug}" not in value:
            raise ValueError(f"sub_path {value!r} must contain {{user_slug}} (one dir per user)")
        return value


class GcsFuseStorage(Section):
    """Cloud Storage through the GKE GCS FUSE CSI driver (needs Workload Identity).

    ``per-user-bucket``: every user gets their own bucket ``bucket_template``
    (created outside labfleet; see docs/gke.md). ``shared-bucket``: one bucket,
    each user confined to ``<prefix>/<user_slug>`` with gcsfuse ``only-dir``.
    """

    kind: Literal["gcsfuse"]
    mode: Literal["per-user-bucket", "shared-bucket"] = "per-user-bucket"
    bucket: str | None = Field(default=None, pattern=r"^[a-z0-9][a-z0-9._-]{1,61}[a-z0-9]$")
    bucket_template: str = "gcsfuse-{user_slug}"
    prefix: str = Field(default="users", pattern=r"^[A-Za-z0-9._-]+(/[A-Za-z0-9._-]+)*$")
    mount_path: str = Field(default="/home/jovyan", pattern=r"^/\S*$")
    mount_options: list[str] = Field(default_factory=lambda: ["implicit-dirs"])

    @field_validator("bucket_template")
    @classmethod
    def _bucket_template(cls, value: str) -> str:
        _check_template(value, USER_TEMPLATE_KEYS, "bucket_template")
        sample = value.format(user_slug="x" * 24)
        if not re.fullmatch(r"[a-z0-9][a-z0-9_-]{1,61}[a-z0-9]", sample):
            raise ValueError(f"bucket_template {value!r} does not give a valid bucket name")
        return value

    @field_validator("mount_options")
    @classmethod
    def _options(cls, value: list[str]) -> list[str]:
        for option in value:
            if not re.fullmatch(r"[A-Za-z0-9_.:=-]+", option) or option.startswith("only-dir"):
                raise ValueError(f"mount option {option!r} is not allowed")
        return value

    @model_validator(mode="after")
    def _bucket_for_shared(self) -> GcsFuseStorage:
        if self.mode == "shared-bucket" and not self.bucket:
            raise ValueError("gcsfuse mode shared-bucket needs 'bucket'")
        return self


Storage = Annotated[
    NoStorage | PvcStorage | NfsStorage | GcsFuseStorage, Field(discriminator="kind")
]


class TpuSpec(Section):
    """A GKE TPU slice: selected by accelerator type and topology."""

    accelerator: str = Field(pattern=r"^tpu-[a-z0-9-]+$", examples=["tpu-v5-lite-podslice"])
    topology: str = Field(pattern=r"^\d+x\d+(x\d+)?$", examples=["2x2", "2x2x1"])
    chips: int = Field(ge=1, le=8, description="google.com/tpu chips requested by the pod.")


class KubeProfile(Section):
    """Cluster-only settings for one entry of ``profiles:`` (same slug)."""

    gpu_accelerator: str | None = Field(
        default=None,
        pattern=r"^[a-z0-9][a-z0-9-]*$",
        description="GKE accelerator node label value, e.g. nvidia-l4 (needs gpus > 0).",
    )
    gpu_resource: str = Field(default="nvidia.com/gpu", pattern=r"^[a-z0-9.-]+/[a-z0-9.-]+$")
    tpu: TpuSpec | None = None
    node_selector: dict[str, str] = Field(default_factory=dict)
    tolerations: list[Toleration] = Field(default_factory=list)
    storage: Storage | None = Field(default=None, description="None: kubernetes.storage.")
    environment: dict[str, str] = Field(default_factory=dict)


class HubDatabase(Section):
    """sqlite on a small PVC (default), or PostgreSQL whose URL sits in a Secret."""

    kind: Literal["sqlite-pvc", "postgres"] = "sqlite-pvc"
    size: Size = 2**30
    storage_class: str | None = None
    secret_name: str | None = Field(default=None, pattern=K8S_NAME)
    secret_key: str = Field(default="url", pattern=r"^[-._a-zA-Z0-9]+$")

    @model_validator(mode="after")
    def _secret_for_postgres(self) -> HubDatabase:
        if self.kind == "postgres" and not self.secret_name:
            raise ValueError("database kind postgres needs secret_name (a Secret holding the URL)")
        return self


class Resources(Section):
    cpu: float | None = Field(default=None, gt=0)
    cpu_guarantee: float | None = Field(default=None, gt=0)
    memory: Size | None = None
    memory_guarantee: Size | None = None


class SecretKeyRef(Section):
    """One key of a Kubernetes Secret (created outside labfleet, e.g. an OAuth client secret)."""

    secret: str = Field(pattern=K8S_NAME)
    key: str = Field(pattern=r"^[-._a-zA-Z0-9]+$")


class KubeHub(Section):
    image: str = DEFAULT_HUB_IMAGE
    env_from_secrets: dict[str, SecretKeyRef] = Field(
        default_factory=dict,
        description="Environment of the hub pod from Secrets, for 'env:VAR' references in "
        "the config (e.g. GITHUB_CLIENT_SECRET: {secret: github-oauth, key: client_secret}).",
    )
    resources: Resources = Field(
        default_factory=lambda: Resources(
            cpu_guarantee=0.2, memory_guarantee=512 * 2**20, memory=2**30
        )
    )
    database: HubDatabase = Field(default_factory=HubDatabase)
    service_account_annotations: dict[str, str] = Field(
        default_factory=dict, description="e.g. iam.gke.io/gcp-service-account for the hub."
    )
    node_selector: dict[str, str] = Field(default_factory=dict)

    @field_validator("image")
    @classmethod
    def _image_reference(cls, value: str) -> str:
        return _no_whitespace(value, "an image reference")

    @field_validator("env_from_secrets")
    @classmethod
    def _env_names(cls, value: dict[str, SecretKeyRef]) -> dict[str, SecretKeyRef]:
        for name in value:
            if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
                raise ValueError(f"{name!r} is not an environment variable name")
            if name.startswith(("LABFLEET_", "JUPYTERHUB_")):
                raise ValueError(f"{name!r}: LABFLEET_* and JUPYTERHUB_* are set by labfleet")
        return value


class KubeProxy(Section):
    image: str | None = Field(
        default=None, description="None: the hub image (labfleet-proxy) or the CHP image."
    )
    chp_image: str = DEFAULT_CHP_IMAGE
    resources: Resources = Field(
        default_factory=lambda: Resources(
            cpu_guarantee=0.1, memory_guarantee=128 * 2**20, memory=512 * 2**20
        )
    )


class IngressOptions(Section):
    """A plain Ingress (ingress-nginx or similar) with TLS from cert-manager."""

    class_name: str | None = "nginx"
    tls: bool = True
    cert_manager_issuer: str | None = Field(
        default="letsencrypt", description="ClusterIssuer name; None: bring tls_secret_name."
    )
    acme_email: str | None = Field(
        default=None,
        pattern=r"^[^@\s]+@[^@\s]+$",
        description="Render a Let's Encrypt ClusterIssuer named cert_manager_issuer.",
    )
    tls_secret_name: str | None = Field(default=None, pattern=K8S_NAME)
    annotations: dict[str, str] = Field(default_factory=dict)


class GkeIngressOptions(Section):
    """GKE's external HTTP(S) load balancer with a managed certificate and IAP."""

    static_ip_name: str | None = Field(
        default=None, description="Reserved global address (gcloud compute addresses create)."
    )
    managed_certificate: bool = True
    https_redirect: bool = True
    iap: bool = True
    oauth_client_secret: str | None = Field(
        default=None,
        pattern=K8S_NAME,
        description="Secret with client_id/client_secret; None: Google-managed OAuth client.",
    )


class AccessSection(Section):
    """How browsers reach the proxy."""

    kind: Literal["cluster-ip", "load-balancer", "ingress", "gke-ingress"] = "cluster-ip"
    host: str | None = Field(
        default=None,
        max_length=253,
        pattern=r"^([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}$",
    )
    load_balancer_source_ranges: list[IpNetwork] = Field(default_factory=list)
    load_balancer: LoadBalancerOptions = Field(default_factory=LoadBalancerOptions)
    ingress: IngressOptions = Field(default_factory=IngressOptions)
    gke: GkeIngressOptions = Field(default_factory=GkeIngressOptions)

    @model_validator(mode="after")
    def _host_when_needed(self) -> AccessSection:
        if self.kind in ("ingress", "gke-ingress") and not self.host:
            raise ValueError(f"access kind {self.kind} needs 'host' (the public DNS name)")
        managed = self.kind == "gke-ingress" and self.gke.managed_certificate
        if managed and self.host is not None and len(self.host) > 63:
            raise ValueError("a Google-managed certificate covers host names of 63 chars at most")
        return self


class PerUserNamespace(Section):
    """Options for ``users.namespaces: per-user`` (own SA, NetworkPolicy, quota)."""

    template: str = Field(default="{namespace}-{user_slug}")
    quota_cpu: float | None = Field(default=None, gt=0)
    quota_memory: Size | None = None
    quota_pods: int | None = Field(default=4, ge=1)
    delete_on_user_delete: bool | None = Field(
        default=None,
        description="Removed: user data is kept by default; see users.delete_data_with_user.",
    )

    @field_validator("delete_on_user_delete")
    @classmethod
    def _renamed(cls, value: bool | None) -> bool | None:
        if value:
            raise ValueError(
                "per_user.delete_on_user_delete was replaced: deleting a user now keeps their "
                "namespace and home volume; to delete them with the user, set "
                "kubernetes.users.delete_data_with_user: true"
            )
        return value

    @field_validator("template")
    @classmethod
    def _template(cls, value: str) -> str:
        _check_template(value, frozenset({"namespace", "user_slug"}), "namespace template")
        if "{user_slug}" not in value:
            raise ValueError("the per-user namespace template must contain {user_slug}")
        sample = value.format(namespace="x" * 30, user_slug="y" * 24)
        if not re.fullmatch(r"[a-z]([a-z0-9-]{0,61}[a-z0-9])?", sample):
            raise ValueError(f"namespace template {value!r} can give an invalid namespace name")
        return value


class UserPods(Section):
    """Defaults for every user's server pod."""

    image: str = DEFAULT_USER_IMAGE
    uid: int = Field(default=1000, ge=1, description="Never 0: restricted pods run non-root.")
    gid: int = Field(default=100, ge=0)
    fs_gid: int | None = Field(default=100, ge=0)
    cmd: list[str] = Field(default_factory=lambda: ["jupyterhub-singleuser"], min_length=1)
    environment: dict[str, str] = Field(default_factory=dict)
    namespaces: Literal["shared", "per-user"] = "shared"
    per_user: PerUserNamespace = Field(default_factory=PerUserNamespace)
    delete_data_with_user: bool = Field(
        default=False,
        description="Deleting a hub user (admin page, API, culling.users) also deletes their "
        "home volume, and with per-user namespaces their whole namespace. Off: their files "
        "are kept until an admin purges them (docs/kubernetes.md).",
    )
    workload_identity: str | None = Field(
        default=None,
        description="Google service account for users' pods (Workload Identity). Shared "
        "namespace: one address; per-user namespaces: may use {user_slug}.",
        examples=["{user_slug}@my-project.iam.gserviceaccount.com"],
    )

    @field_validator("image")
    @classmethod
    def _image_reference(cls, value: str) -> str:
        return _no_whitespace(value, "an image reference")

    @model_validator(mode="after")
    def _identity_template(self) -> UserPods:
        if self.workload_identity is not None:
            allowed = USER_TEMPLATE_KEYS if self.namespaces == "per-user" else frozenset()
            _check_template(self.workload_identity, allowed, "workload_identity")
        return self


class NetworkSection(Section):
    """NetworkPolicies: on by default; users reach the hub, the proxy and the internet."""

    policies: bool = True
    allowed_private_ranges: list[IpNetwork] = Field(
        default_factory=list, description="Private CIDRs users' pods may reach (e.g. a DB)."
    )
    gke_metadata_server: bool | None = Field(
        default=None,
        description="Allow the GKE Workload Identity metadata server (port 988). "
        "None: on when Workload Identity or GCS FUSE is used.",
    )

    @field_validator("allowed_private_ranges")
    @classmethod
    def _never_metadata(cls, value: list[IpNetwork]) -> list[IpNetwork]:
        for network in value:
            for address in METADATA_ADDRESSES:
                if address.version == network.version and address in network:
                    raise ValueError(f"{network} contains the cloud metadata server {address}")
        return value


class ImagesSection(Section):
    registry: str | None = Field(
        default=None,
        pattern=r"^[a-z0-9.-]+(:\d+)?(/[a-z0-9._-]+)*$",
        description="Rewrite every image to this registry (a private mirror).",
    )
    pull_secrets: list[str] = Field(default_factory=list)
    pull_policy: PullPolicy = "IfNotPresent"

    @field_validator("pull_secrets")
    @classmethod
    def _names(cls, value: list[str]) -> list[str]:
        for name in value:
            if not re.fullmatch(K8S_NAME, name):
                raise ValueError(f"{name!r} is not a Secret name")
        return value


class PrepullerSection(Section):
    """A DaemonSet that keeps every profile image on every user node."""

    enabled: bool = False
    extra_images: list[str] = Field(default_factory=list)
    pause_image: str = DEFAULT_PAUSE_IMAGE


class PlaceholderSection(Section):
    """Low-priority pods that hold room for users (evicted when a user arrives)."""

    replicas: int = Field(default=0, ge=0, le=1000, description="0: off.")
    profile: str | None = Field(default=None, description="Sized like this profile (default one).")
    priority: int = Field(default=-10, le=-1)


class KubernetesSection(Section):
    """Everything the cluster needs that one machine does not."""

    namespace: str = Field(default="labfleet", pattern=DNS_LABEL)
    create_namespace: bool = True
    cluster_scoped: bool = Field(
        default=True,
        description="False: render nothing cluster-scoped (no Namespace, ClusterRole, "
        "ClusterIssuer, PriorityClass, PersistentVolume), for a team that owns one existing "
        "namespace and no cluster rights; options that need such objects are refused.",
    )
    hub: KubeHub = Field(default_factory=KubeHub)
    proxy: KubeProxy = Field(default_factory=KubeProxy)
    access: AccessSection = Field(default_factory=AccessSection)
    users: UserPods = Field(default_factory=UserPods)
    storage: Storage = Field(default_factory=lambda: PvcStorage(kind="pvc"))
    profiles: dict[str, KubeProfile] = Field(default_factory=dict)
    network: NetworkSection = Field(default_factory=NetworkSection)
    images: ImagesSection = Field(default_factory=ImagesSection)
    prepuller: PrepullerSection = Field(default_factory=PrepullerSection)
    placeholders: PlaceholderSection = Field(default_factory=PlaceholderSection)
    backup: BackupSection | None = Field(default=None, description="Scheduled backups (CronJob).")

    @model_validator(mode="after")
    def _combinations(self) -> KubernetesSection:
        storages = [("storage", self.storage)] + [
            (f"profiles.{slug}.storage", p.storage) for slug, p in self.profiles.items()
        ]
        per_user = self.users.namespaces == "per-user"
        for where, storage in storages:
            if per_user and isinstance(storage, NfsStorage):
                raise ValueError(
                    f"{where}: nfs storage needs the shared namespace (one claim for all "
                    "users); use pvc or gcsfuse with per-user namespaces"
                )
        if not self.cluster_scoped:
            needs = self._needs_cluster_scoped(storages)
            if needs:
                raise ValueError(
                    "kubernetes.cluster_scoped: false, but "
                    + "; ".join(needs)
                    + " (cluster-scoped objects a namespace owner cannot create)"
                )
        return self

    def _needs_cluster_scoped(self, storages: list[tuple[str, Storage | None]]) -> list[str]:
        """What in this section would render a cluster-scoped object, in plain words."""
        needs = []
        if self.create_namespace and "create_namespace" in self.model_fields_set:
            needs.append("create_namespace: true needs a Namespace (create it beforehand)")
        if self.users.namespaces == "per-user":
            needs.append(
                "users.namespaces: per-user needs a ClusterRole and a Namespace per user "
                "(use the shared namespace)"
            )
        if self.access.kind == "ingress" and self.access.ingress.acme_email:
            needs.append(
                "access.ingress.acme_email renders a ClusterIssuer (name the cluster's "
                "existing issuer in cert_manager_issuer, or bring tls_secret_name)"
            )
        if self.placeholders.replicas:
            needs.append("placeholders need a low PriorityClass (set placeholders.replicas: 0)")
        for where, storage in storages:
            if isinstance(storage, NfsStorage):
                needs.append(f"{where}: nfs renders a PersistentVolume")
        return needs

    def storage_for(self, slug: str) -> Storage:
        extra = self.profiles.get(slug)
        if extra is not None and extra.storage is not None:
            return extra.storage
        return self.storage

    def all_storages(self) -> list[Storage]:
        return [self.storage] + [p.storage for p in self.profiles.values() if p.storage]


def check_against_profiles(value: KubernetesSection, info: ValidationInfo) -> KubernetesSection:
    """Cross-check ``kubernetes.profiles`` against the root ``profiles:`` list.

    Runs as an after-validator of ``FleetConfig.kubernetes`` (declared after
    ``profiles``), so ``info.data`` holds the already-validated profiles.
    """
    profiles: list[Any] | None = info.data.get("profiles")
    if profiles is None:
        return value  # profiles themselves failed; that error is reported already
    by_slug = {p.slug: p for p in profiles}
    known = ", ".join(sorted(by_slug))
    for slug, extra in value.profiles.items():
        profile = by_slug.get(slug)
        if profile is None:
            raise ValueError(f"profiles.{slug}: no entry of 'profiles' has this slug ({known})")
        if extra.gpu_accelerator and profile.gpus == 0:
            raise ValueError(
                f"profiles.{slug}.gpu_accelerator is set but profile {slug} has gpus: 0"
            )
        if extra.tpu is not None and profile.gpus:
            raise ValueError(f"profiles.{slug}: a profile asks for GPUs or a TPU, not both")
    quota = value.users.per_user
    for profile in profiles if value.users.namespaces == "per-user" else []:
        for field, limit, asked in (
            ("quota_cpu", quota.quota_cpu, profile.cpu),
            ("quota_memory", quota.quota_memory, profile.memory),
        ):
            if limit is not None and asked is not None and asked > limit:
                raise ValueError(
                    f"profile {profile.slug} asks for more than a user's whole "
                    f"users.per_user.{field}: every pod of it would be refused by the quota"
                )
    wanted = value.placeholders.profile
    if wanted is not None and wanted not in by_slug:
        raise ValueError(f"placeholders.profile: no profile has slug {wanted!r} ({known})")
    return value


#: The annotated type ``FleetConfig.kubernetes`` uses (section + cross-check).
KubernetesField = Annotated[KubernetesSection, AfterValidator(check_against_profiles)]
