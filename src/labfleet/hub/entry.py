"""What ``jupyterhub_config.py`` runs: read the YAML, build settings, apply them.

Locally ``labfleet up`` sets ``LABFLEET_*`` variables and prepares the data
directory; in the hub pod the same variables come from the Deployment and
the secrets from a Kubernetes Secret.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from labfleet.auth.secret_refs import resolve_secret
from labfleet.config.load import load_config
from labfleet.hub import log_redaction, sqlite_journal
from labfleet.hub.apply import apply_settings
from labfleet.hub.settings import Settings, build_hub_settings
from labfleet.runtime import Runtime
from labfleet.secrets import HubSecrets, ensure_secrets, secrets_from_env


def load_secrets(runtime: Runtime, environ: Mapping[str, str]) -> HubSecrets:
    if runtime.platform == "kubernetes":
        return secrets_from_env(environ)
    return ensure_secrets(runtime.secrets_dir)


def resolve_references(settings: Settings, environ: dict[str, str]) -> Settings:
    """Swap ``env:VAR`` / ``file:PATH`` references for their values, here in the hub process."""
    hub = settings.get("JupyterHub", {})
    if isinstance(hub.get("db_url"), str):
        hub["db_url"] = resolve_secret(hub["db_url"], environ)
    for service in hub.get("services", []):  # services: on Kubernetes (hub/app_services.py)
        if str(service.get("api_token", "")).startswith("env:"):
            service["api_token"] = resolve_secret(service["api_token"], environ)
    return settings


def profile_startup(environ: Mapping[str, str]) -> bool:
    """``LABFLEET_HUB_PROFILE=FILE``: cProfile the hub's start into FILE (``pstats`` format).

    From here (the config is read inside ``JupyterHub.initialize``) until ``start`` returns,
    i.e. the hub is serving: where a restart's seconds go (database, spawner checks, proxy
    routes, services). Only the event loop's thread is profiled, which is the one that
    limits a restart. Off unless the variable is set; returns whether it was.
    """
    path = environ.get("LABFLEET_HUB_PROFILE")
    if not path:
        return False
    import cProfile

    from jupyterhub.app import JupyterHub

    profiler = cProfile.Profile()
    original = JupyterHub.start

    async def start(self: JupyterHub) -> None:
        try:
            await original(self)
        finally:
            profiler.disable()
            profiler.dump_stats(path)

    JupyterHub.start = start
    profiler.enable()
    return True


def configure(c: Any, environ: Mapping[str, str] | None = None) -> None:
    log_redaction.install()
    env = dict(os.environ if environ is None else environ)
    profile_startup(env)
    runtime = Runtime.from_env(env)
    runtime.state_dir.mkdir(parents=True, exist_ok=True)
    config = load_config(env.get("LABFLEET_CONFIG") or None)
    secrets = load_secrets(runtime, env)
    settings = build_hub_settings(config, runtime, secrets)
    settings = resolve_references(settings, env)
    sqlite_journal.install(str(settings.get("JupyterHub", {}).get("db_url", "")))
    apply_settings(c, settings)
