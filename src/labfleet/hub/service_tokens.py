"""Revoke the API tokens JupyterHub generated for the services of a hub that is gone.

A managed service without a configured token (the idle culler, the dashboard)
gets a fresh one at every hub start (note "generated at startup"), and
JupyterHub never deletes the old ones: every crash left one more valid
``delete:servers`` token behind, usable by a leaked culler or anyone who read
it from a dead process's environment. They are deleted before each hub start,
while no hub is running, so only the tokens of the services the new hub starts
are ever valid: under ``labfleet up`` by the supervisor; in the hub pod (one
replica, ``Recreate``; a restarted container reruns no init container) by the
hub's own config load (``hub.entry``), before JupyterHub opens its database.
Tokens from the config (the supervisor's, metrics, ``services:`` entries) are
left alone: they are secrets by design.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, inspect, text

#: the note JupyterHub gives the tokens it generates for managed services
STARTUP_NOTE = "generated at startup"


def revoke_startup_tokens(db_url: str) -> int:
    """Delete every service token JupyterHub generated at a past start; returns how many."""
    if db_url.startswith("sqlite:///") and not Path(db_url.split(":///", 1)[1]).exists():
        return 0  # a first start: connecting would create an empty file
    engine = create_engine(db_url)
    try:
        if not inspect(engine).has_table("api_tokens"):
            return 0  # a first start: no database yet
        with engine.begin() as db:
            result = db.execute(
                text("DELETE FROM api_tokens WHERE service_id IS NOT NULL AND note = :note"),
                {"note": STARTUP_NOTE},
            )
            return int(result.rowcount or 0)
    finally:
        engine.dispose()


def revoke_in_hub_pod(c: Any, environ: Mapping[str, str] | None = None) -> int:
    """In the hub pod only: revoke past startup tokens in the DB the hub is configured for.

    Called from ``jupyterhub_config.py`` after the settings are applied (so ``db_url``
    is resolved, e.g. from ``env:``), which is before JupyterHub opens the database.
    """
    env = os.environ if environ is None else environ
    if env.get("LABFLEET_PLATFORM", "local") != "kubernetes":
        return 0  # `labfleet up`: the supervisor revokes them while no hub runs
    return revoke_startup_tokens(str(c.JupyterHub.db_url))
