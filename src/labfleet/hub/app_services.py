"""Pure: the ``services:`` entries as JupyterHub services, and who may open them.

Each entry is reached at ``/services/<name>/`` through its gate
(:mod:`labfleet.services.gate`), which JupyterHub knows as the service:

* ``labfleet up``: a managed service (the hub starts the gate, which starts
  ``command``); the gate listens next to the hub's persisted port;
* Kubernetes: an external service at the gate's in-cluster Service, with the
  API token the hub reads from ``$LABFLEET_SERVICE_TOKEN_<NAME>`` (an
  ``env:`` reference, resolved in the hub process like ``hub.db_url``).

RBAC: every user gets ``access:services!service=<name>`` unless the entry is
``admin_only`` (admins hold ``access:services`` for all services anyway).
"""

from __future__ import annotations

import json
import sys
from typing import Any

from labfleet.config.model import FleetConfig
from labfleet.config.services import ServiceEntry
from labfleet.runtime import Runtime

#: Gates listen from here on, counted from the hub's port (the dashboard uses +2).
GATE_PORT_OFFSET = 20


def gate_port(hub_port: int, index: int) -> int:
    port = hub_port + GATE_PORT_OFFSET + index
    return port if port < 65536 else hub_port - GATE_PORT_OFFSET - index


def _local_service(entry: ServiceEntry, port: int) -> dict[str, Any]:
    assert entry.command is not None
    environment = {
        "LABFLEET_GATE_UPSTREAM": f"http://127.0.0.1:{entry.port}",
        "LABFLEET_GATE_COMMAND": json.dumps(entry.command),
        "LABFLEET_GATE_ENV": json.dumps(entry.environment),
    }
    if entry.url_prefix:
        environment["LABFLEET_GATE_URL_PREFIX"] = entry.url_prefix
    return {
        "name": entry.name,
        "display": entry.display,
        "info": {"display_name": entry.display_name or entry.name},
        "url": f"http://127.0.0.1:{port}",
        "command": [sys.executable, "-m", "labfleet.services.gate"],
        "oauth_no_confirm": True,
        "environment": environment,
    }


def _kube_service(config: FleetConfig, entry: ServiceEntry) -> dict[str, Any]:
    from labfleet.kube.services import service_url, token_env

    return {
        "name": entry.name,
        "display": entry.display,
        "info": {"display_name": entry.display_name or entry.name},
        "url": service_url(config, entry),
        "api_token": f"env:{token_env(entry)}",
        "oauth_client_id": f"service-{entry.name}",
        "oauth_no_confirm": True,
    }


def app_services(
    config: FleetConfig, runtime: Runtime, hub_port: int
) -> tuple[list[dict[str, Any]], list[str]]:
    """(services, scopes every user gets) for the entries that run on this platform."""
    services: list[dict[str, Any]] = []
    scopes: list[str] = []
    for entry in config.services:
        if runtime.platform == "local" and entry.command:
            services.append(_local_service(entry, gate_port(hub_port, len(services))))
        elif runtime.platform == "kubernetes" and entry.image:
            services.append(_kube_service(config, entry))
        else:
            continue  # nothing to run here (no command locally, no image on a cluster)
        if not entry.admin_only:
            scopes.append(f"access:services!service={entry.name}")
    return services, scopes


def add_app_services(
    settings: dict[str, Any], config: FleetConfig, runtime: Runtime, hub_port: int
) -> None:
    """Append the services; their scopes join the ``user`` role (one role per name)."""
    services, scopes = app_services(config, runtime, hub_port)
    if not services:
        return
    hub = settings.setdefault("JupyterHub", {})
    hub["services"] = [*hub.get("services", []), *services]
    roles = hub.setdefault("load_roles", [])
    user = next((r for r in roles if r.get("name") == "user"), None)
    if user is None:
        roles.append({"name": "user", "scopes": ["self", *scopes]})
    else:
        user["scopes"] = [*user.get("scopes", []), *scopes]
