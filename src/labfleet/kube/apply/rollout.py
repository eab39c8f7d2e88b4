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


#: Waiting reasons that are a normal part of starting, not a problem to report.
_NORMAL_WAITING = frozenset({"ContainerCreating", "PodInitializing"})
_MAX_PROBLEMS = 3


def _condition_message(status: dict[str, Any]) -> tuple[str, str]:
    """(a failure worth reporting, the generic 'not available' text) from conditions."""
    failure = generic = ""
    for condition in status.get("conditions") or []:
        kind, state, message = (
            condition.get("type"),
            condition.get("status"),
            condition.get("message"),
        )
        if not message:
            continue
        if (kind == "ReplicaFailure" and state == "True") or (
            kind == "Progressing" and state == "False"
        ):
            failure = failure or str(message)
        elif state != "True":
            generic = generic or str(message)
    return failure, generic


def pod_problems(pods: Sequence[dict[str, Any]]) -> list[str]:
    """Pure: why pods are not ready, as a person would want it said (image pulls, crashes)."""
    problems: list[str] = []
    for pod in pods:
        name = (pod.get("metadata") or {}).get("name", "?")
        status = pod.get("status") or {}
        for condition in status.get("conditions") or []:
            if condition.get("type") == "PodScheduled" and condition.get("status") == "False":
                problems.append(f"pod {name} unschedulable: {condition.get('message', '')}")
        statuses = (status.get("initContainerStatuses") or []) + (
            status.get("containerStatuses") or []
        )
        for container in statuses:
            state = container.get("state") or {}
            waiting = state.get("waiting") or {}
            terminated = state.get("terminated") or {}
            reason = waiting.get("reason")
            if reason and reason not in _NORMAL_WAITING:
                detail = f": {waiting['message']}" if waiting.get("message") else ""
                problems.append(f"pod {name}: {reason}{detail}")
            elif terminated and terminated.get("exitCode", 0) != 0:
                problems.append(
                    f"pod {name}: container {container.get('name')} exited with "
                    f"{terminated.get('exitCode')} ({terminated.get('reason', 'Error')})"
                )
    return list(dict.fromkeys(problems))[:_MAX_PROBLEMS]


def workload_state(
    ref: ObjectRef,
    live: dict[str, Any] | None,
    elapsed: float,
    pods: Sequence[dict[str, Any]] = (),
) -> RolloutState:
    """Pure: how far one workload's rollout has got (``pods``: its pods, for diagnostics)."""
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
    message = ""
    if not done:
        # The generic "does not have minimum availability" says nothing a person
        # can act on; pods that are merely starting are not a problem either.
        failure, _generic = _condition_message(status)
        message = "; ".join(pod_problems(pods)) or failure
    return RolloutState(ref, min(ready, desired), desired, elapsed, done, message)


def pods_of(cluster: Cluster, ref: ObjectRef, live: dict[str, Any] | None) -> list[dict[str, Any]]:
    selector = (((live or {}).get("spec") or {}).get("selector") or {}).get("matchLabels")
    if not selector:
        return []
    return list(cluster.list("v1", "Pod", namespace=ref.namespace, labels=dict(selector)))


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
            live = cluster.get(ref)
            state = workload_state(ref, live, elapsed)
            if not state.done:
                state = workload_state(ref, live, elapsed, pods_of(cluster, ref, live))
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
