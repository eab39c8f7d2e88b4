"""Kubernetes resource quantities from our typed values (cores as floats, bytes as ints)."""

from __future__ import annotations

from labfleet.config.kube import Resources
from labfleet.config.units import format_size


def cpu_quantity(cores: float) -> str:
    """``2.0`` -> ``"2"``, ``0.5`` -> ``"500m"`` (millicores, rounded up to 1m)."""
    if float(cores).is_integer():
        return str(int(cores))
    return f"{max(1, round(cores * 1000))}m"


def memory_quantity(size: int) -> str:
    return format_size(size)


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
