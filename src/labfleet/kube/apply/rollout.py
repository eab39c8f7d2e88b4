"""Wait until Deployments, StatefulSets and DaemonSets have rolled out.

Polls (rather than watches) so it can report progress at a steady pace
even while nothing changes, which is what a person at a terminal wants to
see: ``waiting for deployment/hub: 0/1 ready (12s)``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

from labfleet.kube.apply.cluster import Cluster
from labfleet.kube.apply.refs import ObjectRef
from labfleet.kube.apply.results import Event, RolloutResult, RolloutState, Waiting

#: Report an unchanged state again after this many seconds.
REPORT_EVERY = 5.0


def _condition_message(status: dict[str, Any]) -> str:
    for condition in status.get("conditions") or []:
        if condition.get("status") != "True" and condition.get("message"):
            return str(condition["message"])
    return ""


def workload_state(ref: ObjectRef, live: dict[str, Any] | None, elapsed: float) -> RolloutState:
    """Pure: how far one workload's rollout has got."""
    if live is None:
        return RolloutState(ref, 0, 1, elapsed, False, "not found")
    spec = live.get("spec") or {}
    status = live.get("status") or {}
    observed = int(status.get("observedGeneration") or 0) >= int(
        (live.get("metadata") or {}).get("generation") or 1
    )
    if ref.kind == "DaemonSet":
        desired = int(status.get("desiredNumberScheduled") or 0)
        ready = int(status.get("numberAvailable") or 0)
        updated = int(status.get("updatedNumberScheduled") or 0)
        done = observed and ready >= desired and updated >= desired
    else:
        desired = int(spec.get("replicas", 1))
        key = "availableReplicas" if ref.kind == "Deployment" else "readyReplicas"
        ready = int(status.get(key) or 0)
        updated = int(status.get("updatedReplicas") or 0)
        total = int(status.get("replicas") or 0)
        done = observed and ready >= desired and updated >= desired and total <= desired
    message = "" if done else _condition_message(status)
    return RolloutState(ref, min(ready, desired), desired, elapsed, done, message)


def wait_for_rollout(
    cluster: Cluster,
    workloads: Sequence[ObjectRef],
    *,
    timeout: float,
    poll: float = 1.0,
    on_event: Callable[[Event], None],
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> RolloutResult:
    start = clock()
    last_reported: dict[ObjectRef, tuple[tuple[int, int, bool], float]] = {}
    states: dict[ObjectRef, RolloutState] = {}
    pending = list(workloads)
    while True:
        elapsed = clock() - start
        for ref in list(pending):
            state = workload_state(ref, cluster.get(ref), elapsed)
            states[ref] = state
            key = (state.ready, state.desired, state.done)
            previous = last_reported.get(ref)
            if previous is None or previous[0] != key or elapsed - previous[1] >= REPORT_EVERY:
                last_reported[ref] = (key, elapsed)
                on_event(Waiting(state))
            if state.done:
                pending.remove(ref)
        if not pending:
            return RolloutResult(tuple(states[r] for r in workloads), timed_out=False)
        if elapsed >= timeout:
            return RolloutResult(tuple(states[r] for r in workloads), timed_out=True)
        sleep(min(poll, max(0.0, timeout - elapsed)) or poll)
