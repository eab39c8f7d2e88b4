"""Roll a workload when a Secret its pods read changes, whoever changed it.

Kubernetes restarts pods only when their template changes, so a new OAuth client secret
in the operator's own Secret, a new database URL, or a rotated hub Secret (create-only:
apply never overwrites it) would leave the hub running with the old values. Before each
workload is applied (or planned) the engine reads every Secret the workload's pods
reference — the values the pods would get if they started now — and puts a checksum of
them in the pod template (:mod:`labfleet.kube.secret_checksum`). A changed Secret then
changes the template, and the Deployment rolls.

Which values count: a Secret this run renders and may overwrite counts with its rendered
data (so ``plan`` shows the rollout that ``apply`` would do); a create-only Secret and
every Secret labfleet does not render count with what the cluster holds; a missing one
counts as missing (its later creation rolls the workload).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from labfleet.kube.apply.cluster import Cluster
from labfleet.kube.apply.policies import is_create_only
from labfleet.kube.apply.preflight import references
from labfleet.kube.apply.refs import Manifest, ObjectRef
from labfleet.kube.secret_checksum import annotate_pod_template, secrets_checksum

ROLLED_KINDS = frozenset({"Deployment", "StatefulSet", "DaemonSet"})
_MISSING = "(missing)"


def rendered_secrets(manifests: Sequence[Manifest]) -> dict[ObjectRef, dict[str, Any]]:
    """Secrets of this run whose rendered data will be what the cluster holds."""
    return {
        ObjectRef.of(m): dict(m.get("data") or {})
        for m in manifests
        if m.get("kind") == "Secret" and not is_create_only(m) and "stringData" not in m
    }


def secret_refs(manifest: Manifest) -> list[ObjectRef]:
    """Secrets a workload's pods read (environment, volumes, image pull secrets)."""
    return sorted(r for r in references(manifest) if r.kind == "Secret")


def with_secrets_checksum(
    cluster: Cluster, manifest: Manifest, rendered: Mapping[ObjectRef, dict[str, Any]]
) -> Manifest:
    """``manifest`` with the checksum of its Secrets in the pod template (workloads only)."""
    if manifest.get("kind") not in ROLLED_KINDS:
        return manifest
    refs = secret_refs(manifest)
    if not refs:
        return manifest
    values: dict[str, str] = {}
    for ref in refs:
        if ref in rendered:
            data: dict[str, Any] | None = rendered[ref]
        else:
            live = cluster.get(ref)
            data = None if live is None else dict(live.get("data") or {})
        values[ref.name] = _MISSING if data is None else json.dumps(sorted(data.items()))
    return annotate_pod_template(manifest, secrets_checksum(values))
