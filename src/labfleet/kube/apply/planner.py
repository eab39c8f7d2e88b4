"""``plan``: what ``apply`` would change, found without changing anything.

For each rendered object that exists, the engine asks the API server for a
server-side *dry-run* apply and compares the result with the live object, so
defaults, normalisation and field ownership are judged by the server, as
``kubectl diff`` does. Objects labfleet owns but no longer renders are listed
for pruning (or as kept, when they hold users' data).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from labfleet.kube.apply.cluster import Cluster, ConflictError
from labfleet.kube.apply.diff import field_diff
from labfleet.kube.apply.inventory import inventory_manifest, owned_objects
from labfleet.kube.apply.policies import create_only_update, is_create_only, keeps_user_data
from labfleet.kube.apply.preflight import missing_references
from labfleet.kube.apply.refs import (
    Manifest,
    ObjectRef,
    Target,
    apply_order,
    check_unique,
    delete_order,
    stamp,
    target_of,
)
from labfleet.kube.apply.results import Action, Change, Plan
from labfleet.kube.apply.secret_rollout import rendered_secrets, with_secrets_checksum


def desired_with_inventory(manifests: Sequence[Manifest], target: Target) -> list[Manifest]:
    """Rendered objects in apply order, with the inventory ConfigMap last."""
    check_unique(manifests)
    ordered = [stamp(m, target) for m in apply_order(manifests)]
    ordered.append(inventory_manifest(target, (ObjectRef.of(m) for m in manifests)))
    return ordered


def effective_manifest(manifest: Manifest, live: dict[str, Any] | None) -> Manifest | None:
    """What to send for ``manifest`` given the live object (None: send nothing)."""
    if is_create_only(manifest):
        return create_only_update(manifest, live)
    return manifest


def plan_one(cluster: Cluster, manifest: Manifest, force: bool = False) -> Change:
    ref = ObjectRef.of(manifest)
    live = cluster.get(ref)
    if live is None:
        return Change(ref, Action.CREATE)
    wanted = effective_manifest(manifest, live)
    if wanted is None:
        return Change(ref, Action.UNCHANGED, reason="create-only: existing values kept")
    try:
        proposed = cluster.apply(wanted, force=force, dry_run=True)
    except ConflictError as error:
        return Change(ref, Action.CONFLICT, reason=str(error))
    fields = tuple(field_diff(live, proposed))
    return Change(ref, Action.UPDATE if fields else Action.UNCHANGED, fields)


def prune_candidates(
    owned: dict[ObjectRef, dict[str, Any]], desired: set[ObjectRef]
) -> tuple[list[ObjectRef], list[Change]]:
    """(objects to delete, objects kept because they hold users' data)."""
    delete: list[ObjectRef] = []
    kept: list[Change] = []
    for ref in delete_order(set(owned) - desired):
        if keeps_user_data(owned[ref], ref.kind) or ref.kind == "Namespace":
            kept.append(Change(ref, Action.KEEP, reason="may hold users' data; not pruned"))
        else:
            delete.append(ref)
    return delete, kept


def plan(cluster: Cluster, manifests: Sequence[Manifest], *, namespace: str | None = None) -> Plan:
    """Compare the rendered ``manifests`` with the cluster; change nothing."""
    target = target_of(manifests, namespace)
    desired = desired_with_inventory(manifests, target)
    rendered = rendered_secrets(desired)
    changes = [plan_one(cluster, with_secrets_checksum(cluster, m, rendered)) for m in desired]
    refs = {c.ref for c in changes}
    owned = owned_objects(
        cluster,
        target,
        namespaces={r.namespace for r in refs if r.namespace},
        kinds={(r.api_version, r.kind) for r in refs},
    )
    delete, kept = prune_candidates(owned, refs)
    changes += [Change(ref, Action.PRUNE) for ref in delete]
    changes += kept
    warnings = tuple(str(m) for m in missing_references(cluster, manifests))
    return Plan(target, tuple(changes), warnings)
