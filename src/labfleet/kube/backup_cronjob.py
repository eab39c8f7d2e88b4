"""``kubernetes.backup``: a CronJob that runs ``labfleet backup`` beside the hub (pure).

The job's pod is the hub's twin as far as a backup needs: the same image, the
same environment (config path, data dir, the hub Secret's values, the
database URL) and the same data volume, so ``labfleet backup`` finds exactly
what the running hub uses (:func:`labfleet.ops.target.locate`). The sqlite
volume is ReadWriteOnce, which lets several pods mount it only on one node:
the job is pinned next to the hub pod. SQLite's online backup API makes the
copy consistent while the hub writes.

Each run writes ``<name>-<UTC time>.labfleet-backup`` into the archive claim
through a temporary name (a failed run never leaves a half archive that could
be mistaken for a good one), then deletes all but the newest ``keep``.
"""

from __future__ import annotations

import shlex
from typing import Any

from labfleet.config.kube_backup import BackupSection
from labfleet.config.model import FleetConfig
from labfleet.kube.hub import deployment as hub_deployment
from labfleet.kube.images import rewrite_image
from labfleet.kube.meta import (
    COMPONENT_HUB,
    DESTROY_KEEP_USER_DATA,
    DESTROY_POLICY,
    Manifest,
    labels,
    manifest,
    metadata,
    names_of,
    selector,
)
from labfleet.kube.quantities import memory_quantity

COMPONENT_BACKUP = "backup"
BACKUP_DIR = "/backups"
SUFFIX = ".labfleet-backup"
PASSPHRASE_ENV = "LABFLEET_BACKUP_PASSPHRASE"  # noqa: S105 - a variable name (cli/backup.py)


def backup_name(config: FleetConfig) -> str:
    return f"{names_of(config).instance}-backup"


def claim_name(config: FleetConfig, backup: BackupSection) -> str:
    return backup.claim or f"{names_of(config).instance}-backups"


def backup_script(config: FleetConfig, keep: int) -> str:
    """The job's shell: archive under a temporary name, then prune to the newest ``keep``."""
    prefix = shlex.quote(f"{BACKUP_DIR}/{names_of(config).instance}-")
    return "\n".join(
        [
            "set -eu",
            f'archive={prefix}"$(date -u +%Y%m%dT%H%M%SZ)"{SUFFIX}',
            "trap 'rm -f -- \"$archive.partial\"' EXIT",  # a failed run leaves nothing
            'labfleet backup -o "$archive.partial"',
            'mv "$archive.partial" "$archive"',
            f"ls -1t {prefix}*{SUFFIX} | tail -n +{keep + 1} | while read -r old; do "
            'rm -f -- "$old"; done',
            'echo "kept the newest ' + str(keep) + ' archives; wrote $archive"',
        ]
    )


def archive_claim(config: FleetConfig, backup: BackupSection) -> list[Manifest]:
    if backup.claim:
        return []  # brought by the operator
    spec: dict[str, Any] = {
        "accessModes": ["ReadWriteOnce"],
        "resources": {"requests": {"storage": memory_quantity(backup.size)}},
    }
    if backup.storage_class is not None:
        spec["storageClassName"] = backup.storage_class
    keep = {DESTROY_POLICY: DESTROY_KEEP_USER_DATA}  # the archives are the point
    meta = metadata(config, claim_name(config, backup), COMPONENT_BACKUP, annotations=keep)
    return [manifest("v1", "PersistentVolumeClaim", meta, spec=spec)]


def _next_to_the_hub(config: FleetConfig) -> dict[str, Any]:
    term = {
        "labelSelector": {"matchLabels": selector(config, COMPONENT_HUB)},
        "topologyKey": "kubernetes.io/hostname",
    }
    return {"podAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [term]}}


def cronjob(config: FleetConfig, backup: BackupSection) -> Manifest:
    kube = config.kubernetes
    hub_pod = hub_deployment(config)["spec"]["template"]["spec"]
    hub = hub_pod["containers"][0]
    env = list(hub["env"])
    if backup.passphrase is not None:
        ref = {"name": backup.passphrase.secret, "key": backup.passphrase.key}
        env.append({"name": PASSPHRASE_ENV, "valueFrom": {"secretKeyRef": ref}})
    image = rewrite_image(backup.image, kube.images) if backup.image else hub["image"]
    container = {
        "name": "backup",
        "image": image,
        "imagePullPolicy": kube.images.pull_policy,
        "args": ["/bin/sh", "-c", backup_script(config, backup.keep)],
        "env": env,
        "resources": hub["resources"],
        "securityContext": hub["securityContext"],
        "volumeMounts": [
            *hub["volumeMounts"],
            {"name": "backups", "mountPath": BACKUP_DIR},
        ],
    }
    volumes = [
        *hub_pod["volumes"],
        {"name": "backups", "persistentVolumeClaim": {"claimName": claim_name(config, backup)}},
    ]
    pod_spec: dict[str, Any] = {
        "restartPolicy": "Never",
        "automountServiceAccountToken": False,  # a backup never talks to the API
        "securityContext": hub_pod["securityContext"],
        "containers": [container],
        "volumes": volumes,
    }
    for key in ("imagePullSecrets", "nodeSelector"):
        if key in hub_pod:
            pod_spec[key] = hub_pod[key]
    if kube.hub.database.kind == "sqlite-pvc":
        pod_spec["affinity"] = _next_to_the_hub(config)
    spec: dict[str, Any] = {
        "schedule": backup.schedule,
        "concurrencyPolicy": "Forbid",
        "startingDeadlineSeconds": 3600,
        "successfulJobsHistoryLimit": 3,
        "failedJobsHistoryLimit": 3,
        "jobTemplate": {
            "spec": {
                "backoffLimit": 2,
                "template": {
                    "metadata": {"labels": labels(config, COMPONENT_BACKUP)},
                    "spec": pod_spec,
                },
            }
        },
    }
    if backup.time_zone:
        spec["timeZone"] = backup.time_zone
    meta = metadata(config, backup_name(config), COMPONENT_BACKUP)
    return manifest("batch/v1", "CronJob", meta, spec=spec)


def backup_objects(config: FleetConfig) -> list[Manifest]:
    """The archive claim and the CronJob; nothing without ``kubernetes.backup``."""
    backup = config.kubernetes.backup
    if backup is None:
        return []
    return [*archive_claim(config, backup), cronjob(config, backup)]


def backup_warnings(config: FleetConfig) -> list[str]:
    backup = config.kubernetes.backup
    if backup is None:
        return []
    warnings = []  # the hub image carries pg_dump (deploy/hub.Dockerfile), so no image warning
    if backup.passphrase is None:
        warnings.append(
            "kubernetes.backup archives are not encrypted, and they hold the hub's secrets "
            "(cookie secret, crypt key, tokens): set kubernetes.backup.passphrase"
        )
    return warnings
