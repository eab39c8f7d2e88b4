"""``destroy``: delete everything one labfleet instance owns.

Users' servers (pods) go first so nothing keeps writing; then every owned
object in reverse apply order. Users' data survives unless asked otherwise:
PVCs, and namespaces that hold them (deleting a namespace deletes its
volumes) or are marked ``keep-unless-delete-user-data``.
"""

from __future__ import annotations

from collections.abc import Callable

from labfleet.kube.apply.cluster import Cluster
from labfleet.kube.apply.inventory import inventory_ref, owned_objects
from labfleet.kube.apply.policies import keeps_user_data
from labfleet.kube.apply.refs import ObjectRef, Target, delete_order
from labfleet.kube.apply.results import Deleted, DestroyResult, Event, Kept
from labfleet.kube.apply.users import ref_of, user_namespaces, user_pods, user_volumes


def _ignore(_: Event) -> None:
    return None


def destroy(
    cluster: Cluster,
    target: Target,
    *,
    delete_user_data: bool = False,
    on_event: Callable[[Event], None] = _ignore,
) -> DestroyResult:
    deleted: list[ObjectRef] = []
    kept: list[Kept] = []

    def remove(ref: ObjectRef) -> None:
        if cluster.delete(ref):
            deleted.append(ref)
            on_event(Deleted(ref))

    for pod in list(user_pods(cluster, target)):
        remove(ref_of(pod, "v1", "Pod"))

    owned = owned_objects(cluster, target)
    volumes = {ref_of(v, "v1", "PersistentVolumeClaim"): v for v in user_volumes(cluster, target)}
    owned.update(volumes)
    spaces = {ref_of(n, "v1", "Namespace"): n for n in user_namespaces(cluster, target)}
    owned.update(spaces)
    volume_namespaces = {ref.namespace for ref in volumes}
    inventory = inventory_ref(target)
    ordered = delete_order(set(owned) - {inventory})
    namespaces = [ref for ref in ordered if ref.kind == "Namespace"]
    for ref in [ref for ref in ordered if ref.kind != "Namespace"] + [inventory, *namespaces]:
        if ref == inventory:
            remove(ref)
            continue
        if not delete_user_data:
            if keeps_user_data(owned[ref], ref.kind):
                reason = "users' data: kept (use --delete-user-data to delete)"
                kept.append(Kept(ref, reason))
                continue
            if ref.kind == "Namespace" and (ref.name in volume_namespaces or ref in spaces):
                kept.append(Kept(ref, "a user's namespace or holds users' volumes: kept"))
                continue
        remove(ref)
    return DestroyResult(target, tuple(deleted), tuple(kept))
