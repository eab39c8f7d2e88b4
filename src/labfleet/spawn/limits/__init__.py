"""Per-server CPU, memory and process limits with control groups (v1 or v2).

Use :func:`probe` to find the backend this machine offers and the
:class:`LimitsBackend` interface to create, join and remove a server's group.
"""

from labfleet.spawn.limits.base import Limits, LimitsBackend, LimitsError
from labfleet.spawn.limits.detect import LimitsProbe, probe

__all__ = ["Limits", "LimitsBackend", "LimitsError", "LimitsProbe", "probe"]
