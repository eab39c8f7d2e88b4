"""The supervisor's name for :mod:`labfleet.hub.service_tokens` (the hub pod uses it too)."""

from labfleet.hub.service_tokens import STARTUP_NOTE, revoke_startup_tokens

__all__ = ["STARTUP_NOTE", "revoke_startup_tokens"]
