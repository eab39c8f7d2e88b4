"""The hub: ServiceAccount + RBAC, a Secret with the YAML, database volume, Service, Deployment.

The hub pod runs the very same settings builder as ``labfleet up``
(``labfleet/hub/jupyterhub_config.py``), fed the YAML from the config Secret and
the secrets from the hub Secret as ``LABFLEET_SECRET_*`` variables.
"""

from __future__ import annotations

import base64
import hashlib
from typing import Any

import yaml

from labfleet.config.model import FleetConfig
from labfleet.kube.hub_secret import env_name, secret_keys
from labfleet.kube.images import pull_secret_refs, rewrite_image
from labfleet.kube.meta import (
    COMPONENT_HUB,
    CONFIG_CHECKSUM,
    DESTROY_KEEP_USER_DATA,
    DESTROY_POLICY,
    HUB_PORT,
    PROXY_API_PORT,
    PROXY_PORT,
    Manifest,
    labels,
    manifest,
    metadata,
    names_of,
    selector,
)
from labfleet.kube.quantities import memory_quantity, resource_requirements
from labfleet.kube.security import SERVICE_UID, container_security_context, pod_security_context
from labfleet.kube.services import hub_token_env

#: Where the hub image has the entry file (deploy/hub.Dockerfile links it there).
HUB_CONFIG_IN_IMAGE = "/opt/labfleet/jupyterhub_config.py"
CONFIG_DIR = "/etc/labfleet"
CONFIG_FILE = "labfleet.yaml"
DATA_DIR = "/srv/labfleet"
DB_URL_ENV = "LABFLEET_DB_URL"
#: The hub pod's init container: ``labfleet db upgrade`` reads the hub's own environment
#: (LABFLEET_CONFIG, LABFLEET_DATA_DIR, LABFLEET_DB_URL), takes a backup and migrates; an
#: interrupted migration makes it (and so the pod) refuse to start, with the fix in its log.
UPGRADE_DB_COMMAND = ["labfleet", "db", "upgrade"]

_SPAWN_VERBS = ["get", "watch", "list", "create", "delete"]
_READ_VERBS = ["get", "watch", "list"]
_OWN_VERBS = ["get", "create", "patch", "update", "delete"]


def namespace(config: FleetConfig) -> Manifest:
    """The hub namespace, enforcing Pod Security "restricted" for everything in it."""
    ns = config.kubernetes.namespace
    meta = metadata(
        config,
        ns,
        COMPONENT_HUB,
        namespaced=False,
        annotations={DESTROY_POLICY: DESTROY_KEEP_USER_DATA},
    )
    meta["labels"].update(pod_security_labels())
    return manifest("v1", "Namespace", meta)


def pod_security_labels() -> dict[str, str]:
    return {
        "pod-security.kubernetes.io/enforce": "restricted",
        "pod-security.kubernetes.io/enforce-version": "latest",
        "pod-security.kubernetes.io/warn": "restricted",
    }


def service_account(config: FleetConfig) -> Manifest:
    names = names_of(config)
    meta = metadata(
        config,
        names.hub,
        COMPONENT_HUB,
        annotations=config.kubernetes.hub.service_account_annotations or None,
    )
    return manifest("v1", "ServiceAccount", meta)


def rbac_rules(per_user_namespaces: bool) -> list[dict[str, Any]]:
    """What KubeSpawner needs: pods, claims and events; more for per-user namespaces."""
    rules: list[dict[str, Any]] = [
        {"apiGroups": [""], "resources": ["pods", "persistentvolumeclaims"], "verbs": _SPAWN_VERBS},
        {"apiGroups": [""], "resources": ["events"], "verbs": _READ_VERBS},
    ]
    if per_user_namespaces:
        rules += [
            {"apiGroups": [""], "resources": ["namespaces"], "verbs": ["get", "create", "delete"]},
            {
                "apiGroups": [""],
                "resources": ["serviceaccounts", "resourcequotas", "limitranges"],
                "verbs": _OWN_VERBS,
            },
            {
                "apiGroups": ["networking.k8s.io"],
                "resources": ["networkpolicies"],
                "verbs": _OWN_VERBS,
            },
        ]
    return rules


def rbac(config: FleetConfig) -> list[Manifest]:
    """A namespaced Role, or a ClusterRole when users get their own namespaces."""
    names = names_of(config)
    per_user = config.kubernetes.users.namespaces == "per-user"
    subject = {"kind": "ServiceAccount", "name": names.hub, "namespace": names.namespace}
    rules = rbac_rules(per_user)
    if per_user:
        role_name = f"{names.cluster_scoped_prefix}-hub"
        role = manifest(
            "rbac.authorization.k8s.io/v1",
            "ClusterRole",
            metadata(config, role_name, COMPONENT_HUB, namespaced=False),
            rules=rules,
        )
        binding = manifest(
            "rbac.authorization.k8s.io/v1",
            "ClusterRoleBinding",
            metadata(config, role_name, COMPONENT_HUB, namespaced=False),
            roleRef={
                "apiGroup": "rbac.authorization.k8s.io",
                "kind": "ClusterRole",
                "name": role_name,
            },
            subjects=[subject],
        )
        return [role, binding]
    role = manifest(
        "rbac.authorization.k8s.io/v1",
        "Role",
        metadata(config, names.hub, COMPONENT_HUB),
        rules=rules,
    )
    binding = manifest(
        "rbac.authorization.k8s.io/v1",
        "RoleBinding",
        metadata(config, names.hub, COMPONENT_HUB),
        roleRef={"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": names.hub},
        subjects=[subject],
    )
    return [role, binding]


def config_yaml(config: FleetConfig) -> str:
    """The YAML the hub pod loads: our config, with the database URL taken from env."""
    effective = config
    if config.kubernetes.hub.database.kind == "postgres":
        effective = config.model_copy(
            update={"hub": config.hub.model_copy(update={"db_url": f"env:{DB_URL_ENV}"})}
        )
    data = effective.model_dump(mode="json", exclude_defaults=True)
    return yaml.safe_dump(data, sort_keys=False, default_flow_style=False)


def config_secret(config: FleetConfig) -> Manifest:
    """The YAML as a Secret, not a ConfigMap: it may hold literal secrets (a demo password,
    an OAuth client secret, a database URL), and reading ConfigMaps is a much wider right
    than reading Secrets. Re-applied on every change (unlike the create-only hub Secret)."""
    names = names_of(config)
    text = base64.b64encode(config_yaml(config).encode()).decode()
    return manifest(
        "v1",
        "Secret",
        metadata(config, names.hub_config, COMPONENT_HUB),
        type="Opaque",
        data={CONFIG_FILE: text},
    )


def database_claim(config: FleetConfig) -> list[Manifest]:
    database = config.kubernetes.hub.database
    if database.kind != "sqlite-pvc":
        return []
    spec: dict[str, Any] = {
        "accessModes": ["ReadWriteOnce"],
        "resources": {"requests": {"storage": memory_quantity(database.size)}},
    }
    if database.storage_class is not None:
        spec["storageClassName"] = database.storage_class
    names = names_of(config)
    return [
        manifest(
            "v1", "PersistentVolumeClaim", metadata(config, names.hub_db, COMPONENT_HUB), spec=spec
        )
    ]


def service(config: FleetConfig) -> Manifest:
    names = names_of(config)
    spec = {
        "type": "ClusterIP",
        "selector": selector(config, COMPONENT_HUB),
        "ports": [{"name": "hub", "port": HUB_PORT, "targetPort": "hub", "protocol": "TCP"}],
    }
    return manifest("v1", "Service", metadata(config, names.hub, COMPONENT_HUB), spec=spec)


def _env(config: FleetConfig) -> list[dict[str, Any]]:
    names = names_of(config)
    plain = {
        "LABFLEET_PLATFORM": "kubernetes",
        "LABFLEET_CONFIG": f"{CONFIG_DIR}/{CONFIG_FILE}",
        "LABFLEET_DATA_DIR": DATA_DIR,
        "LABFLEET_IP": "0.0.0.0",  # noqa: S104 - the public side is the proxy's Service
        "LABFLEET_PORT": str(PROXY_PORT),
        "LABFLEET_HUB_PORT": str(HUB_PORT),
        "LABFLEET_PROXY_API_PORT": str(PROXY_API_PORT),
        "HOME": "/tmp",  # noqa: S108 - read-only root filesystem; /tmp is an emptyDir
        "PYTHONUNBUFFERED": "1",
    }
    env: list[dict[str, Any]] = [{"name": k, "value": v} for k, v in plain.items()]
    env.append(
        {"name": "POD_NAMESPACE", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}}
    )
    for key in secret_keys():
        env.append(
            {
                "name": env_name(key),
                "valueFrom": {"secretKeyRef": {"name": names.hub_secret, "key": key}},
            }
        )
    env += hub_token_env(config)  # services: API tokens (kube/services.py)
    for name, ref in config.kubernetes.hub.env_from_secrets.items():
        env.append(
            {
                "name": name,
                "valueFrom": {"secretKeyRef": {"name": ref.secret, "key": ref.key}},
            }
        )
    database = config.kubernetes.hub.database
    if database.kind == "postgres":
        env.append(
            {
                "name": DB_URL_ENV,
                "valueFrom": {
                    "secretKeyRef": {"name": database.secret_name, "key": database.secret_key}
                },
            }
        )
    return env


def _probe(config: FleetConfig, *, period: int, failures: int) -> dict[str, Any]:
    return {
        "httpGet": {"path": f"{config.hub.base_url}hub/health", "port": "hub"},
        "periodSeconds": period,
        "failureThreshold": failures,
        "timeoutSeconds": 3,
    }


def deployment(config: FleetConfig) -> Manifest:
    """One replica, Recreate: JupyterHub keeps state in memory and must never run twice.

    An init container runs ``labfleet db upgrade`` first, for sqlite and PostgreSQL alike
    (JupyterHub's own ``--upgrade-db`` is not used: it backs up sqlite files only).
    """
    names = names_of(config)
    kube = config.kubernetes
    sqlite = kube.hub.database.kind == "sqlite-pvc"
    command = ["jupyterhub", "-f", HUB_CONFIG_IN_IMAGE]
    data_volume: dict[str, Any] = (
        {"name": "data", "persistentVolumeClaim": {"claimName": names.hub_db}}
        if sqlite
        else {"name": "data", "emptyDir": {}}
    )
    container = {
        "name": "hub",
        "image": rewrite_image(kube.hub.image, kube.images),
        "imagePullPolicy": kube.images.pull_policy,
        # args, not command: the image's entrypoint (tini) stays PID 1 and forwards SIGTERM
        "args": command,
        "env": _env(config),
        "ports": [{"name": "hub", "containerPort": HUB_PORT, "protocol": "TCP"}],
        "resources": resource_requirements(kube.hub.resources),
        "securityContext": container_security_context(),
        "volumeMounts": [
            {"name": "config", "mountPath": CONFIG_DIR, "readOnly": True},
            {"name": "data", "mountPath": DATA_DIR},
            {"name": "tmp", "mountPath": "/tmp"},  # noqa: S108
        ],
        "startupProbe": _probe(config, period=5, failures=60),
        "readinessProbe": _probe(config, period=10, failures=3),
        "livenessProbe": _probe(config, period=30, failures=5),
    }
    upgrade = {
        key: container[key]
        for key in ("image", "imagePullPolicy", "env", "resources", "securityContext")
    }
    upgrade_db = {"name": "upgrade-db", **upgrade, "args": UPGRADE_DB_COMMAND}
    upgrade_db["volumeMounts"] = container["volumeMounts"]
    pod_spec: dict[str, Any] = {
        "serviceAccountName": names.hub,
        "automountServiceAccountToken": True,  # the hub talks to the API to spawn pods
        "securityContext": pod_security_context(SERVICE_UID, SERVICE_UID, SERVICE_UID),
        # sqlite and PostgreSQL alike: back up, then migrate, before JupyterHub starts
        "initContainers": [upgrade_db],
        "containers": [container],
        "volumes": [
            {"name": "config", "secret": {"secretName": names.hub_config}},
            data_volume,
            {"name": "tmp", "emptyDir": {}},
        ],
    }
    if kube.images.pull_secrets:
        pod_spec["imagePullSecrets"] = pull_secret_refs(kube.images)
    if kube.hub.node_selector:
        pod_spec["nodeSelector"] = dict(kube.hub.node_selector)
    checksum = hashlib.sha256(config_yaml(config).encode()).hexdigest()
    template_meta = {
        "labels": labels(config, COMPONENT_HUB),
        "annotations": {CONFIG_CHECKSUM: checksum},
    }
    spec = {
        "replicas": 1,
        "strategy": {"type": "Recreate"},
        "selector": {"matchLabels": selector(config, COMPONENT_HUB)},
        "template": {"metadata": template_meta, "spec": pod_spec},
    }
    return manifest("apps/v1", "Deployment", metadata(config, names.hub, COMPONENT_HUB), spec=spec)


def hub_objects(config: FleetConfig) -> list[Manifest]:
    """All hub objects except the Secret (whose values are an input; see hub_secret)."""
    return [
        service_account(config),
        *rbac(config),
        config_secret(config),
        *database_claim(config),
        service(config),
        deployment(config),
    ]
