"""Kubernetes resource quantities from our typed values (cores as floats, bytes as ints)."""

from __future__ import annotations

from labfleet.config.kube import Resources


def cpu_quantity(cores: float) -> str:
    """``2.0`` -> ``"2"``, ``0.5`` -> ``"500m"`` (millicores, rounded up to 1m)."""
    if float(cores).is_integer():
        return str(int(cores))
    return f"{max(1, round(cores * 1000))}m"


_UNITS = (
    ("Ei", 2**60), ("Pi", 2**50), ("Ti", 2**40), ("Gi", 2**30), ("Mi", 2**20), ("Ki", 2**10),
    ("E", 10**18), ("P", 10**15), ("T", 10**12), ("G", 10**9), ("M", 10**6), ("k", 10**3),
)  # fmt: skip


def memory_quantity(size: int) -> str:
    """Shortest exact spelling: ``2G`` rather than ``1953125Ki``, ``2Gi`` rather than bytes."""
    candidates = [str(size)] + [f"{size // f}{u}" for u, f in _UNITS if size and size % f == 0]
    return min(candidates, key=len)


def resource_requirements(resources: Resources) -> dict[str, dict[str, str]]:
    requests: dict[str, str] = {}
    limits: dict[str, str] = {}
    if resources.cpu_guarantee is not None:
        requests["cpu"] = cpu_quantity(resources.cpu_guarantee)
    if resources.memory_guarantee is not None:
        requests["memory"] = memory_quantity(resources.memory_guarantee)
    if resources.cpu is not None:
        limits["cpu"] = cpu_quantity(resources.cpu)
    if resources.memory is not None:
        limits["memory"] = memory_quantity(resources.memory)
    out: dict[str, dict[str, str]] = {}
    if requests:
        out["requests"] = requests
    if limits:
        out["limits"] = limits
    return out
