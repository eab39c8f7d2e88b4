"""FleetConfig → JupyterHub traitlets settings: one pure function.

The result is a plain ``{ClassName: {trait: value}}`` mapping; the entry file
(``jupyterhub_config.py``) applies it to JupyterHub's config object. Both
``labfleet up`` and the Kubernetes hub pod run this same builder.
"""

from __future__ import annotations

import hashlib
import sys
from pathlib import Path
from typing import Any

from labfleet.config.model import CullingSection, FleetConfig, ProxySection
from labfleet.hub.app_services import add_app_services
from labfleet.runtime import Runtime
from labfleet.secrets import HubSecrets, crypt_keys
from labfleet.spawn.policy import NamedServerLimit, profiles_setting

Settings = dict[str, dict[str, Any]]
SUPERVISOR_SERVICE = "labfleet"
DEFAULT_HUB_PORT = 8081
DEFAULT_PROXY_API_PORT = 8001


def merge(into: Settings, extra: Settings) -> Settings:
    """Merge ``extra`` into ``into`` class by class (later wins per trait)."""
    for cls, traits in extra.items():
        into.setdefault(cls, {}).update(traits)
    return into


def _bin(name: str) -> str:
    return str(Path(sys.prefix) / "bin" / name)


def named_server_limit(config: FleetConfig) -> int | NamedServerLimit:
    servers = config.servers
    exceptions = servers.named_server_limits
    if not exceptions.groups and not exceptions.users:
        return servers.named_server_limit
    return NamedServerLimit(servers.named_server_limit, exceptions.groups, exceptions.users)


def hub_db_url(config: FleetConfig, runtime: Runtime) -> str:
    """The hub database URL (maybe an ``env:``/``file:`` reference); ops/ reads the same one."""
    return runtime.db_url or config.hub.db_url or f"sqlite:///{runtime.hub_db}"


def core_settings(config: FleetConfig, runtime: Runtime, secrets: HubSecrets) -> Settings:
    hub_port = runtime.hub_port or DEFAULT_HUB_PORT
    base = config.hub.base_url
    db_url = hub_db_url(config, runtime)
    hub_ip = "0.0.0.0" if runtime.platform == "kubernetes" else "127.0.0.1"  # noqa: S104
    return {
        "JupyterHub": {
            "bind_url": f"http://{runtime.ip}:{runtime.port}{base}",
            "hub_bind_url": f"http://{hub_ip}:{hub_port}",
            "db_url": db_url,
            "cookie_secret": bytes.fromhex(secrets.cookie_secret),
            "log_level": config.hub.log_level,
            "concurrent_spawn_limit": config.hub.concurrent_spawn_limit,
            "allow_named_servers": config.servers.named_servers,
            "named_server_limit_per_user": named_server_limit(config),
            # Ctrl-C on `labfleet up` stops servers cleanly; a crashed or restarted hub
            # finds them again through their saved state (they run in their own session).
            "cleanup_servers": True,
            "cleanup_proxy": True,
            "pid_file": str(runtime.state_dir / "jupyterhub.pid"),
        },
        # `new;old` during a crypt-key rotation (labfleet rotate); JupyterHub encrypts with the 1st
        "CryptKeeper": {"keys": [bytes.fromhex(k) for k in crypt_keys(secrets.crypt_key)]},
        "Spawner": {
            "default_url": config.servers.default_url,
            "start_timeout": config.servers.start_timeout,
            "http_timeout": config.servers.http_timeout,
        },
    }


def proxy_settings(proxy: ProxySection, runtime: Runtime, secrets: HubSecrets) -> Settings:
    api_port = runtime.proxy_api_port or DEFAULT_PROXY_API_PORT
    if proxy.kind == "labfleet":
        command = [_bin("labfleet-proxy")]
        if proxy.workers > 1:
            command += ["--workers", str(proxy.workers)]
        for network in proxy.trusted_proxies:
            command += ["--trusted-proxy", network]
    else:
        command = list(proxy.chp_command or ["configurable-http-proxy"])
    settings: Settings = {
        "ConfigurableHTTPProxy": {
            "command": command,
            "api_url": f"http://127.0.0.1:{api_port}",
            "auth_token": secrets.proxy_token,
            "pid_file": str(runtime.state_dir / "proxy.pid"),
            "should_start": runtime.platform == "local",
        },
    }
    if runtime.platform == "local":  # a restarted hub keeps the running proxy (hub/kept_proxy)
        settings["JupyterHub"] = {"proxy_class": "labfleet.hub.kept_proxy.KeptProxy"}
    return settings


def culler_command(culling: CullingSection) -> list[str]:
    command = [
        sys.executable,
        "-m",
        "jupyterhub_idle_culler",
        f"--timeout={culling.timeout}",
        f"--cull-every={culling.every}",
        f"--max-age={culling.max_age}",
    ]
    if culling.users:
        command.append("--cull-users")
    return command


def supervisor_scopes(platform: str) -> list[str]:
    """What the supervisor token may do: no more than its one user on each platform needs.

    On one machine that user is ``labfleet up``/``reload``/``status`` (resume servers, apply
    account changes through ``/labfleet/access``, which needs ``admin:users``). On
    Kubernetes nothing but ``labfleet smoke`` uses it, and smoke also issues its temporary
    user a token limited to that user's server (``tokens``; see docs/kubernetes.md,
    "The supervisor token"). A local token that could mint tokens for any user, admins
    included, would be a way to every account for no feature at all.
    """
    scopes = ["list:users", "read:users", "read:servers", "servers", "admin:users"]
    if platform == "kubernetes":
        scopes.append("tokens")
    return scopes


def services_settings(config: FleetConfig, secrets: HubSecrets, platform: str) -> Settings:
    services: list[dict[str, Any]] = [
        # `labfleet up` (one machine) and `labfleet smoke` (Kubernetes) use this token
        {"name": SUPERVISOR_SERVICE, "api_token": secrets.supervisor_token},
    ]
    roles: list[dict[str, Any]] = [
        {
            "name": "labfleet-supervisor",
            "scopes": supervisor_scopes(platform),
            "services": [SUPERVISOR_SERVICE],
        },
    ]
    if secrets.metrics_token:  # Prometheus: /hub/metrics and nothing else
        services.append({"name": "prometheus", "api_token": secrets.metrics_token})
        roles.append({"name": "prometheus", "scopes": ["read:metrics"], "services": ["prometheus"]})
    if config.culling.enabled:
        services.append({"name": "idle-culler", "command": culler_command(config.culling)})
        scopes = ["list:users", "read:users:activity", "read:servers", "delete:servers"]
        if config.culling.users:
            scopes.append("admin:users")
        roles.append({"name": "idle-culler", "scopes": scopes, "services": ["idle-culler"]})
    return {"JupyterHub": {"services": services, "load_roles": roles}}


def cgroup_parent_for(data_dir: Path) -> str:
    """One parent control group per data directory: two platforms never share groups."""
    digest = hashlib.sha256(str(data_dir.resolve()).encode()).hexdigest()[:8]
    return f"labfleet-{digest}"


def cgroup_parent(runtime: Runtime) -> str:
    return cgroup_parent_for(runtime.data_dir)


def local_spawner_settings(config: FleetConfig, runtime: Runtime) -> Settings:
    """LocalSpawner traits: paths from the runtime, isolation/limits/GPUs from ``local:``."""
    local = config.local

    def shared(path: str | None) -> str:
        # relative shared folders live in the data directory
        return str(runtime.data_dir / path) if path else ""

    from labfleet.spawn.diagnose import TEMPLATES, LastEndLookup

    return {
        "JupyterHub": {
            "spawner_class": "labfleet.spawn.local.LocalSpawner",
            # the "server not running" page says why it stopped (spawn.diagnose)
            "template_paths": [str(TEMPLATES)],
            "template_vars": {"labfleet_last_end": LastEndLookup(str(runtime.state_dir))},
        },
        "LocalSpawner": {
            "homes_dir": str(runtime.homes_dir),
            "logs_dir": str(runtime.logs_dir / "servers"),
            "run_dir": str(runtime.state_dir / "servers"),
            "isolation": local.isolation,
            "limits_backend": local.limits,
            "pids_max": local.pids_max,
            "kernel_preload": local.kernel_preload,
            "shared_data_dir": shared(local.shared.data),
            "shared_scratch_dir": shared(local.shared.scratch),
            "gpu_mode": local.gpus.mode,
            "gpu_devices": local.gpus.devices,
            "gpu_memory_fraction": local.gpus.memory_fraction or 0.0,
            "gpu_wait": float(local.gpus.wait),
            "gpu_state_file": str(runtime.state_dir / "gpus.json"),
            "cgroup_parent": cgroup_parent(runtime),
            "launcher_kind": config.servers.launcher,
        },
        "Spawner": {"cmd": [_bin("jupyterhub-singleuser")]},
    }


def spawner_settings(config: FleetConfig, runtime: Runtime) -> Settings:
    if runtime.platform == "kubernetes":
        from labfleet.kube.spawner_settings import build_kubespawner_settings

        return build_kubespawner_settings(config)
    return local_spawner_settings(config, runtime)


def _add_dashboard_and_branding(settings: Settings, config: FleetConfig, runtime: Runtime) -> None:
    """The usage dashboard service and the branding (services.settings), appended."""
    from labfleet.hub.service_settings import branding_settings, dashboard_services

    hub = settings.setdefault("JupyterHub", {})
    services, roles = dashboard_services(config, runtime, runtime.hub_port or DEFAULT_HUB_PORT)
    hub["services"] = [*hub.get("services", []), *services]
    hub["load_roles"] = [*hub.get("load_roles", []), *roles]
    traits, variables = branding_settings(config)
    hub.update(traits)
    hub["template_vars"] = {**hub.get("template_vars", {}), **variables}
    if runtime.platform != "local":  # the local spawner's builder adds them there
        from labfleet.spawn.diagnose import TEMPLATES

        hub.setdefault("template_paths", [str(TEMPLATES)])


def _services_die_with_hub(settings: Settings) -> None:
    """Managed services exec through a parent-death-signal wrapper (labfleet up)."""
    import sys

    for service in settings.get("JupyterHub", {}).get("services", []):
        command = service.get("command")
        if command and "labfleet.up.die_with_parent" not in command:
            service["command"] = [sys.executable, "-m", "labfleet.up.die_with_parent", *command]


def build_hub_settings(config: FleetConfig, runtime: Runtime, secrets: HubSecrets) -> Settings:
    """Everything JupyterHub needs, from the typed config; ``extra_config`` wins last."""
    from labfleet.auth.settings import build_auth_settings

    settings: Settings = {}
    merge(settings, core_settings(config, runtime, secrets))
    merge(settings, proxy_settings(config.proxy, runtime, secrets))
    if config.tls is not None and runtime.platform == "local":
        from labfleet.tls.settings import apply_tls

        ours = config.proxy.kind == "labfleet"
        apply_tls(settings, config.tls, runtime.data_dir, labfleet_proxy=ours)
    merge(settings, spawner_settings(config, runtime))
    merge(settings, build_auth_settings(config.auth, runtime))
    merge(settings, services_settings(config, secrets, runtime.platform))
    _add_dashboard_and_branding(settings, config, runtime)
    add_app_services(settings, config, runtime, runtime.hub_port or DEFAULT_HUB_PORT)
    if runtime.platform == "local":
        _services_die_with_hub(settings)
    # spawners that offer profiles read them from this trait (list of plain dicts)
    merge(settings, {"Spawner": {"labfleet_profiles": profiles_setting(config.profiles)}})
    # dicts and named lists are merged; a clash with our names is refused (hub/extra_config)
    from labfleet.hub.extra_config import merge_extra_config

    merge_extra_config(settings, config.hub.extra_config)
    return settings
