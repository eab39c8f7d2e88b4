"""The apply engine: the effects half of ``labfleet.kube``.

Input is what the pure builders render (a list of manifest dicts, each
labelled ``app.kubernetes.io/managed-by: labfleet`` and
``app.kubernetes.io/instance``); output is typed results. Nothing here
prints: :mod:`labfleet.kube.apply.report` turns results into text.

    cluster = Cluster(connect(kubeconfig))
    print(plan_text(plan(cluster, manifests)))
    result = apply(cluster, manifests, on_event=lambda e: print(event_line(e)))
"""

from labfleet.kube.apply.cluster import Cluster, ClusterError, ConflictError
from labfleet.kube.apply.connect import connect
from labfleet.kube.apply.engine import apply
from labfleet.kube.apply.fleet_status import status
from labfleet.kube.apply.planner import plan
from labfleet.kube.apply.refs import ManifestError, ObjectRef, Target, target_of
from labfleet.kube.apply.report import (
    apply_summary,
    destroy_summary,
    event_line,
    plan_text,
    status_text,
)
from labfleet.kube.apply.results import (
    Action,
    ApplyResult,
    Change,
    DestroyResult,
    Event,
    FleetStatus,
    Plan,
)
from labfleet.kube.apply.teardown import destroy

__all__ = [
    "Action",
    "ApplyResult",
    "Change",
    "Cluster",
    "ClusterError",
    "ConflictError",
    "DestroyResult",
    "Event",
    "FleetStatus",
    "ManifestError",
    "ObjectRef",
    "Plan",
    "Target",
    "apply",
    "apply_summary",
    "connect",
    "destroy",
    "destroy_summary",
    "event_line",
    "plan",
    "plan_text",
    "status",
    "status_text",
    "target_of",
]
