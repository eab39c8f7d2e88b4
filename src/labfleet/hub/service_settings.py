"""Pure: the usage dashboard service (labfleet.services.dashboard), its roles, the branding."""

from __future__ import annotations

import sys
from typing import Any

from labfleet.config.model import FleetConfig
from labfleet.runtime import Runtime

DASHBOARD = "dashboard"
DASHBOARD_PATH = f"/services/{DASHBOARD}/"


def dashboard_port(hub_port: int) -> int:
    """Next to the hub's (persisted) port, so restarts keep it."""
    return hub_port + 2 if hub_port + 2 < 65536 else hub_port - 2


def dashboard_services(
    config: FleetConfig, runtime: Runtime, hub_port: int
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(services, roles) to add; none on Kubernetes (no data dir or cgroups there) or if off."""
    if runtime.platform != "local" or not config.dashboard.enabled:
        return [], []
    service = {
        "name": DASHBOARD,
        "display": True,
        "url": f"http://127.0.0.1:{dashboard_port(hub_port)}",
        "command": [sys.executable, "-m", "labfleet.services.dashboard"],
        "oauth_no_confirm": True,
        "environment": {
            "LABFLEET_DATA_DIR": str(runtime.data_dir),
            "LABFLEET_DASHBOARD_EVERY": str(config.dashboard.sample_every),
            "LABFLEET_LIMITS": config.local.limits,
            "LABFLEET_BRAND_NAME": config.branding.name or config.name,
        },
    }
    roles = [
        {
            "name": "labfleet-dashboard",
            "scopes": ["list:users", "read:users", "read:servers", "read:metrics"],
            "services": [DASHBOARD],
        },
        # every member may open it (the service shows a member only their own servers)
        {"name": "user", "scopes": ["self", f"access:services!service={DASHBOARD}"]},
    ]
    return [service], roles


def branding_settings(config: FleetConfig) -> tuple[dict[str, Any], dict[str, Any]]:
    """(JupyterHub traits, template variables) for name, logo and announcement."""
    branding = config.branding
    traits: dict[str, Any] = {}
    if branding.logo:
        traits["logo_file"] = branding.logo
    variables: dict[str, Any] = {"labfleet_name": branding.name or "JupyterHub"}
    if branding.announcement:
        variables["announcement"] = branding.announcement
    return traits, variables
