"""What a kubelet reports when a pod's container ends: pure status builders for the bridge.

The test-only kubelet (podman_kubelet.py) sees a podman container exit; a kubelet would
then either restart it, per the pod's ``restartPolicy`` (``Always``: any exit;
``OnFailure``, KubeSpawner's choice: a non-zero exit; ``Never``: none), with a growing
back-off, or leave it terminated and end the pod ``Succeeded`` (exit 0) or ``Failed``.
KubeSpawner's ``poll`` reads exactly these fields (phase, the ``notebook`` container's
``state.terminated.exitCode``), so they are built here the way the API server shows them.
An init container that fails leaves the pod ``Pending`` with that container terminated
(``kubectl`` shows ``Init:Error``) and the main containers waiting in ``PodInitializing``.
"""

from __future__ import annotations

import copy
from datetime import UTC, datetime
from typing import Any

#: A kubelet's crash-loop back-off: 10 s, doubling, at most five minutes.
BACKOFF_FIRST_S = 10.0
BACKOFF_MAX_S = 300.0


def stamp(unix: float) -> str:
    """An API server timestamp (RFC 3339, seconds, UTC)."""
    return datetime.fromtimestamp(unix, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def restarts(policy: str | None, exit_code: int) -> bool:
    """Whether a kubelet restarts a container that exited with ``exit_code``."""
    policy = policy or "Always"  # the API server's default
    return policy == "Always" or (policy == "OnFailure" and exit_code != 0)


def backoff(restart_count: int) -> float:
    """Seconds before the next restart: the first restart is at once, as a kubelet's."""
    if restart_count == 0:
        return 0.0
    return float(min(BACKOFF_FIRST_S * 2 ** (restart_count - 1), BACKOFF_MAX_S))


def terminated(exit_code: int, started: float, finished: float) -> dict[str, Any]:
    return {
        "terminated": {
            "exitCode": exit_code,
            "reason": "Completed" if exit_code == 0 else "Error",
            "startedAt": stamp(started),
            "finishedAt": stamp(finished),
        }
    }


def _conditions(status: dict[str, Any], ready: bool, reason: str | None) -> list[dict[str, Any]]:
    out = []
    for condition in status.get("conditions") or []:
        condition = dict(condition)
        if condition["type"] in ("Ready", "ContainersReady"):
            condition["status"] = "True" if ready else "False"
            if reason and not ready:
                condition["reason"] = reason
            else:
                condition.pop("reason", None)
        out.append(condition)
    return out


def _container(status: dict[str, Any], name: str) -> dict[str, Any]:
    return next(c for c in status.get("containerStatuses") or [] if c["name"] == name)


def ended_status(
    status: dict[str, Any], container: str, exit_code: int, started: float, finished: float
) -> dict[str, Any]:
    """The pod after ``container`` ended for good (not restarted): Succeeded or Failed."""
    new = copy.deepcopy(status)
    entry = _container(new, container)
    entry.update(ready=False, started=False, state=terminated(exit_code, started, finished))
    codes = [
        c["state"]["terminated"]["exitCode"]
        for c in new["containerStatuses"]
        if "terminated" in c.get("state", {})
    ]
    if len(codes) == len(new["containerStatuses"]):
        new["phase"] = "Succeeded" if not any(codes) else "Failed"
        reason = "PodCompleted" if new["phase"] == "Succeeded" else "PodFailed"
    else:
        reason = "ContainersNotReady"
    new["conditions"] = _conditions(new, False, reason)
    return new


def backing_off_status(
    status: dict[str, Any], container: str, exit_code: int, started: float, finished: float
) -> dict[str, Any]:
    """Waiting to be restarted: ``CrashLoopBackOff``, last run's end in ``lastState``."""
    new = copy.deepcopy(status)
    entry = _container(new, container)
    entry.update(
        ready=False,
        started=False,
        lastState=terminated(exit_code, started, finished),
        state={"waiting": {"reason": "CrashLoopBackOff", "message": "back-off restarting"}},
    )
    new["conditions"] = _conditions(new, False, "ContainersNotReady")
    return new


def restarted_status(
    status: dict[str, Any],
    container: str,
    exit_code: int,
    started: float,
    finished: float,
    now: float,
    pod_ip: str,
) -> dict[str, Any]:
    """Running again after a restart: ``restartCount`` + 1, the previous run in ``lastState``."""
    new = copy.deepcopy(status)
    entry = _container(new, container)
    entry.update(
        ready=True,
        started=True,
        restartCount=int(entry.get("restartCount", 0)) + 1,
        lastState=terminated(exit_code, started, finished),
        state={"running": {"startedAt": stamp(now)}},
    )
    new.update(podIP=pod_ip, podIPs=[{"ip": pod_ip}])
    new["conditions"] = _conditions(new, True, None)
    return new


def init_failed_status(
    pod: dict[str, Any],
    ran: list[tuple[str, int, float, float]],
) -> dict[str, Any]:
    """Pending, with the init containers that ran (name, exit, start, end); the last failed."""
    spec = pod.get("spec") or {}
    by_name = {name: (code, started, finished) for name, code, started, finished in ran}
    inits = []
    for init in spec.get("initContainers") or []:
        found = by_name.get(init["name"])
        state = (
            terminated(*found) if found is not None else {"waiting": {"reason": "PodInitializing"}}
        )
        inits.append(
            {
                "name": init["name"],
                "image": init["image"],
                "imageID": "",
                "ready": found is not None and found[0] == 0,
                "restartCount": 0,
                "state": state,
            }
        )
    return {
        "phase": "Pending",
        "qosClass": (pod.get("status") or {}).get("qosClass", "BestEffort"),
        "conditions": [
            {"type": "PodScheduled", "status": "True"},
            {"type": "Initialized", "status": "False", "reason": "ContainersNotInitialized"},
            {"type": "ContainersReady", "status": "False", "reason": "ContainersNotInitialized"},
            {"type": "Ready", "status": "False", "reason": "ContainersNotInitialized"},
        ],
        "initContainerStatuses": inits,
        "containerStatuses": [
            {
                "name": c["name"],
                "image": c["image"],
                "imageID": "",
                "ready": False,
                "started": False,
                "restartCount": 0,
                "state": {"waiting": {"reason": "PodInitializing"}},
            }
            for c in spec.get("containers") or []
        ],
    }
