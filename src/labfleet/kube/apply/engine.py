"""``apply``: server-side apply in dependency order, inventory, prune, rollout.

Every object is sent with field manager ``labfleet``; conflicts with other
managers stop the run (``force_conflicts`` takes the fields back). A run
that fails part-way leaves the previous inventory in place, so the next
run still knows everything it owns.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from labfleet.kube.apply.cluster import Cluster
from labfleet.kube.apply.diff import field_diff
from labfleet.kube.apply.endpoint import find_endpoint
from labfleet.kube.apply.inventory import owned_objects
from labfleet.kube.apply.planner import desired_with_inventory, effective_manifest, prune_candidates
from labfleet.kube.apply.preflight import missing_references
from labfleet.kube.apply.refs import Manifest, ObjectRef, target_of
from labfleet.kube.apply.results import (
    Action,
    Applied,
    ApplyResult,
    Change,
    Event,
    Notice,
    Pruned,
)
from labfleet.kube.apply.rollout import wait_for_rollout
from labfleet.kube.apply.secret_rollout import rendered_secrets, with_secrets_checksum

EventSink = Callable[[Event], None]


def _ignore(_: Event) -> None:
    return None


def apply_one(cluster: Cluster, manifest: Manifest, force: bool) -> Change:
    ref = ObjectRef.of(manifest)
    live = cluster.get(ref)
    wanted = effective_manifest(manifest, live)
    if wanted is None:
        return Change(ref, Action.UNCHANGED, reason="create-only: existing values kept")
    result = cluster.apply(wanted, force=force)
    if live is None:
        return Change(ref, Action.CREATE)
    fields = tuple(field_diff(live, result))
    return Change(ref, Action.UPDATE if fields else Action.UNCHANGED, fields)


def apply(
    cluster: Cluster,
    manifests: Sequence[Manifest],
    *,
    namespace: str | None = None,
    force_conflicts: bool = False,
    prune: bool = True,
    wait: bool = True,
    timeout: float = 300.0,
    poll: float = 1.0,
    on_event: EventSink = _ignore,
) -> ApplyResult:
    """Make the cluster match ``manifests``; see the module docstring.

    Raises :class:`~labfleet.kube.apply.cluster.ConflictError` on a field
    ownership conflict and :class:`~labfleet.kube.apply.cluster.ClusterError`
    when the server rejects an object (the message names it).
    """
    target = target_of(manifests, namespace)
    desired = desired_with_inventory(manifests, target)
    rendered = rendered_secrets(desired)
    changes: list[Change] = []
    for manifest in desired:
        # after the Secrets it reads (apply order), so it sees their values of this run
        manifest = with_secrets_checksum(cluster, manifest, rendered)
        change = apply_one(cluster, manifest, force_conflicts)
        changes.append(change)
        on_event(Applied(change))

    pruned: list[ObjectRef] = []
    kept: list[Change] = []
    if prune:
        refs = {c.ref for c in changes}
        owned = owned_objects(
            cluster,
            target,
            namespaces={r.namespace for r in refs if r.namespace},
            kinds={(r.api_version, r.kind) for r in refs},
        )
        delete, kept = prune_candidates(owned, refs)
        for ref in delete:
            if cluster.delete(ref):
                pruned.append(ref)
                on_event(Pruned(ref))

    warnings = tuple(str(m) for m in missing_references(cluster, manifests))
    for warning in warnings:
        on_event(Notice(warning))
    rollout = None
    if wait:
        workloads = [
            c.ref for c in changes if c.ref.kind in ("Deployment", "StatefulSet", "DaemonSet")
        ]
        rollout = wait_for_rollout(
            cluster, workloads, timeout=timeout, poll=poll, on_event=on_event
        )
    return ApplyResult(
        target,
        tuple(changes),
        tuple(pruned),
        tuple(kept),
        rollout,
        find_endpoint(cluster, manifests),
        warnings,
    )
