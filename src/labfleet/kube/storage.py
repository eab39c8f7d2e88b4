"""Users' storage: KubeSpawner settings per storage kind, and the cluster objects some need.

``{user_slug}`` in names and paths is expanded by
:class:`labfleet.kube.spawner.LabfleetKubeSpawner` from :mod:`labfleet.naming`,
never by KubeSpawner's own slug scheme.
"""

from __future__ import annotations

from typing import Any

from labfleet.config.kube import GcsFuseStorage, NfsStorage, NoStorage, PvcStorage, Storage
from labfleet.config.model import FleetConfig
from labfleet.kube.meta import (
    COMPONENT_USER,
    DESTROY_KEEP_USER_DATA,
    DESTROY_POLICY,
    Manifest,
    manifest,
    metadata,
    names_of,
)
from labfleet.kube.quantities import memory_quantity

GCSFUSE_DRIVER = "gcsfuse.csi.storage.gke.io"
GCSFUSE_ANNOTATION = "gke-gcsfuse/volumes"
VOLUME_NAME = "home"


def distinct_nfs(config: FleetConfig) -> list[NfsStorage]:
    found: list[NfsStorage] = []
    for storage in config.kubernetes.all_storages():
        if isinstance(storage, NfsStorage) and storage not in found:
            found.append(storage)
    return found


def nfs_claim_name(config: FleetConfig, storage: NfsStorage) -> str:
    """One claim per distinct export, numbered in config order."""
    return f"{names_of(config).instance}-nfs-{distinct_nfs(config).index(storage)}"


def gcsfuse_volume(storage: GcsFuseStorage, uid: int, gid: int) -> dict[str, Any]:
    options = [*storage.mount_options, f"uid={uid}", f"gid={gid}"]
    if storage.mode == "per-user-bucket":
        bucket = storage.bucket_template
    else:
        assert storage.bucket is not None
        bucket = storage.bucket
        options.append(f"only-dir={storage.prefix}/{{user_slug}}")
    return {
        "name": VOLUME_NAME,
        "csi": {
            "driver": GCSFUSE_DRIVER,
            "volumeAttributes": {"bucketName": bucket, "mountOptions": ",".join(options)},
        },
    }


def storage_settings(config: FleetConfig, storage: Storage) -> dict[str, Any]:
    """KubeSpawner traits for one storage choice (global default or a profile's)."""
    users = config.kubernetes.users
    # every kind sets every key, so a profile switch never inherits another's volume
    settings: dict[str, Any] = {
        "storage_pvc_ensure": False,
        "pvc_name_template": "home-{user_slug}",
        "storage_capacity": None,
        "storage_access_modes": ["ReadWriteOnce"],
        "storage_class": None,
        "volumes": [],
        "volume_mounts": [],
        "extra_annotations": {},
    }
    if isinstance(storage, NoStorage):
        return settings
    if isinstance(storage, PvcStorage):
        # per server: <prefix>-<user>--<server> (named servers never share an RWO volume)
        owner = "{server_slug}" if storage.claim_per == "server" else "{user_slug}"
        settings.update(
            storage_pvc_ensure=True,
            pvc_name_template=f"{storage.claim_prefix}-{owner}",
            storage_capacity=memory_quantity(storage.size),
            storage_access_modes=[storage.access_mode],
            storage_class=storage.storage_class,  # None: the cluster default class
            volumes=[
                {
                    "name": VOLUME_NAME,
                    "persistentVolumeClaim": {"claimName": f"{storage.claim_prefix}-{owner}"},
                }
            ],
            volume_mounts=[{"name": VOLUME_NAME, "mountPath": storage.mount_path}],
        )
        return settings
    if isinstance(storage, NfsStorage):
        claim = nfs_claim_name(config, storage)
        settings.update(
            volumes=[{"name": VOLUME_NAME, "persistentVolumeClaim": {"claimName": claim}}],
            volume_mounts=[
                {"name": VOLUME_NAME, "mountPath": storage.mount_path, "subPath": storage.sub_path}
            ],
        )
        return settings
    gid = users.fs_gid if users.fs_gid is not None else users.gid
    settings.update(
        volumes=[gcsfuse_volume(storage, users.uid, gid)],
        volume_mounts=[{"name": VOLUME_NAME, "mountPath": storage.mount_path}],
        extra_annotations={GCSFUSE_ANNOTATION: "true"},
    )
    return settings


def nfs_objects(config: FleetConfig) -> list[Manifest]:
    """A PersistentVolume + ReadWriteMany claim per NFS export (inline nfs is not 'restricted')."""
    names = names_of(config)
    objects: list[Manifest] = []
    keep = {DESTROY_POLICY: DESTROY_KEEP_USER_DATA}  # users' files live on the export
    for index, storage in enumerate(distinct_nfs(config)):
        claim = nfs_claim_name(config, storage)
        volume_name = f"{names.cluster_scoped_prefix}-nfs-{index}"
        size = memory_quantity(storage.capacity)
        objects.append(
            manifest(
                "v1",
                "PersistentVolume",
                metadata(config, volume_name, COMPONENT_USER, namespaced=False, annotations=keep),
                spec={
                    "capacity": {"storage": size},
                    "accessModes": ["ReadWriteMany"],
                    "persistentVolumeReclaimPolicy": "Retain",
                    "storageClassName": "",
                    "mountOptions": ["nfsvers=4.1"],
                    "nfs": {"server": storage.server, "path": storage.path},
                    "claimRef": {"namespace": names.namespace, "name": claim},
                },
            )
        )
        objects.append(
            manifest(
                "v1",
                "PersistentVolumeClaim",
                metadata(config, claim, COMPONENT_USER, annotations=keep),
                spec={
                    "accessModes": ["ReadWriteMany"],
                    "storageClassName": "",
                    "volumeName": volume_name,
                    "resources": {"requests": {"storage": size}},
                },
            )
        )
    return objects
