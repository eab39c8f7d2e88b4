"""``labfleet smoke``: the real-cluster test every operator runs after ``apply``.

``plan`` decides names, probe code and verdicts (pure); ``access``, ``hubapi`` and ``run``
are the effects (port-forward, the hub's REST API and a kernel's websocket, the run).
"""

from labfleet.kube.smoke.plan import Outcome, StepResult, report_line, summary
from labfleet.kube.smoke.run import SmokeOptions, SmokeRun, results_failed

__all__ = [
    "Outcome",
    "SmokeOptions",
    "SmokeRun",
    "StepResult",
    "report_line",
    "results_failed",
    "summary",
]
