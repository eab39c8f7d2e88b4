"""The pod statuses the container bridge reports when a container ends (pure, no podman)."""

from __future__ import annotations

from typing import Any

from tests.containers import pod_exit


def _running() -> dict[str, Any]:
    return {
        "phase": "Running",
        "podIP": "10.88.0.5",
        "conditions": [
            {"type": t, "status": "True"}
            for t in ("PodScheduled", "Initialized", "ContainersReady", "Ready")
        ],
        "containerStatuses": [
            {
                "name": "notebook",
                "image": "user",
                "ready": True,
                "started": True,
                "restartCount": 0,
                "state": {"running": {"startedAt": "2026-01-01T00:00:00Z"}},
            }
        ],
    }


def test_restart_policy_decides_like_a_kubelet() -> None:
    assert pod_exit.restarts("Always", 0) and pod_exit.restarts(None, 0)
    assert pod_exit.restarts("OnFailure", 137) and not pod_exit.restarts("OnFailure", 0)
    assert not pod_exit.restarts("Never", 1)
    assert [pod_exit.backoff(n) for n in (0, 1, 2, 3, 10)] == [0, 10, 20, 40, 300]


def test_a_clean_exit_that_is_not_restarted_ends_the_pod_succeeded() -> None:
    ended = pod_exit.ended_status(_running(), "notebook", 0, 100.0, 160.0)
    assert ended["phase"] == "Succeeded"
    (notebook,) = ended["containerStatuses"]
    # what KubeSpawner's poll reads: the notebook container's terminated exit code
    assert notebook["state"]["terminated"]["exitCode"] == 0
    assert notebook["state"]["terminated"]["reason"] == "Completed"
    assert notebook["ready"] is False
    ready = {c["type"]: c["status"] for c in ended["conditions"]}
    assert ready["Ready"] == ready["ContainersReady"] == "False"
    assert pod_exit.ended_status(_running(), "notebook", 2, 1.0, 2.0)["phase"] == "Failed"


def test_a_crash_under_on_failure_backs_off_then_runs_again_with_a_restart_counted() -> None:
    waiting = pod_exit.backing_off_status(_running(), "notebook", 137, 100.0, 160.0)
    (notebook,) = waiting["containerStatuses"]
    assert waiting["phase"] == "Running"
    assert notebook["state"]["waiting"]["reason"] == "CrashLoopBackOff"
    assert notebook["lastState"]["terminated"]["exitCode"] == 137
    again = pod_exit.restarted_status(waiting, "notebook", 137, 100.0, 160.0, 170.0, "10.88.0.9")
    (notebook,) = again["containerStatuses"]
    assert notebook["restartCount"] == 1 and "running" in notebook["state"]
    assert notebook["lastState"]["terminated"]["reason"] == "Error"
    assert again["podIP"] == "10.88.0.9"
    assert {c["type"]: c["status"] for c in again["conditions"]}["Ready"] == "True"


def test_a_failed_init_container_leaves_the_pod_pending_in_init_error() -> None:
    pod = {
        "spec": {
            "initContainers": [
                {"name": "first", "image": "user"},
                {"name": "second", "image": "user"},
                {"name": "third", "image": "user"},
            ],
            "containers": [{"name": "notebook", "image": "user"}],
        }
    }
    status = pod_exit.init_failed_status(pod, [("first", 0, 1.0, 2.0), ("second", 3, 2.0, 3.0)])
    assert status["phase"] == "Pending"
    first, second, third = status["initContainerStatuses"]
    assert first["state"]["terminated"]["exitCode"] == 0 and first["ready"]
    assert second["state"]["terminated"] == {
        "exitCode": 3,
        "reason": "Error",
        "startedAt": "1970-01-01T00:00:02Z",
        "finishedAt": "1970-01-01T00:00:03Z",
    }
    assert third["state"] == {"waiting": {"reason": "PodInitializing"}}
    (notebook,) = status["containerStatuses"]
    assert notebook["state"]["waiting"]["reason"] == "PodInitializing"
    assert {c["type"]: c["status"] for c in status["conditions"]}["Initialized"] == "False"
