"""LimitRange and ResourceQuota admission in the Kubernetes API double (built-in plugins).

* LimitRanger (mutating): a container without a ``limits``/``requests`` entry gets the
  ``default``/``defaultRequest`` of the namespace's ``type: Container`` LimitRange items
  (a request it still lacks then equals its limit, as API defaulting does).
* ResourceQuota (validating): when a quota in the namespace constrains ``limits.cpu``,
  ``limits.memory``, ``requests.cpu`` or ``requests.memory``, every container must say that
  resource, else the pod is refused with a cluster's message (``failed quota: NAME: must
  specify limits.cpu for: notebook``); ``pods`` counts the namespace's pods.

Usage of cpu/memory against ``hard`` is not summed: labfleet's tests need the refusal of
pods that do not specify, which is what a quota without a LimitRange does to every spawn.
"""

from __future__ import annotations

from typing import Any

Obj = dict[str, Any]
_CONSTRAINED = ("limits.cpu", "limits.memory", "requests.cpu", "requests.memory")


def _containers(spec: Obj) -> list[Obj]:
    return list(spec.get("initContainers") or []) + list(spec.get("containers") or [])


def apply_limit_ranges(limit_ranges: list[Obj], pod: Obj) -> None:
    """Fill missing container limits/requests from the LimitRanges, in place."""
    for item in [i for lr in limit_ranges for i in (lr.get("spec") or {}).get("limits") or []]:
        if item.get("type") != "Container":
            continue
        for container in _containers(pod.get("spec") or {}):
            resources = container.setdefault("resources", {})
            for field, source in (("limits", "default"), ("requests", "defaultRequest")):
                for name, value in (item.get(source) or {}).items():
                    resources.setdefault(field, {}).setdefault(name, value)
            limits = resources.get("limits") or {}
            for name, value in limits.items():
                resources.setdefault("requests", {}).setdefault(name, value)


def quota_refusal(quotas: list[Obj], pods_in_namespace: int, pod: Obj) -> str | None:
    """The 403 message a cluster gives for ``pod``, or None when the quotas admit it."""
    name = (pod.get("metadata") or {}).get("name", "")
    for quota in quotas:
        hard = (quota.get("spec") or {}).get("hard") or {}
        quota_name = quota["metadata"]["name"]
        missing = []
        for constrained in _CONSTRAINED:
            if constrained not in hard:
                continue
            field, resource = constrained.split(".")
            lacking = [
                c["name"]
                for c in _containers(pod.get("spec") or {})
                if resource not in ((c.get("resources") or {}).get(field) or {})
            ]
            if lacking:
                missing.append(f"{constrained} for: {','.join(lacking)}")
        if missing:
            return (
                f'pods "{name}" is forbidden: failed quota: {quota_name}: must specify '
                + "; ".join(missing)
            )
        if "pods" in hard and pods_in_namespace + 1 > int(hard["pods"]):
            return (
                f'pods "{name}" is forbidden: exceeded quota: {quota_name}, requested: '
                f"pods=1, used: pods={pods_in_namespace}, limited: pods={hard['pods']}"
            )
    return None
