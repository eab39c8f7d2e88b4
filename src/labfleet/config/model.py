"""FleetConfig: the whole typed ``labfleet.yaml``.

Each section lives in its own module; this one only composes them and holds
the small sections that have no other home.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from labfleet.config.auth import AuthSection
from labfleet.config.base import Section
from labfleet.config.kube import KubernetesField, KubernetesSection
from labfleet.config.local import LocalSection
from labfleet.config.profiles import Profile, default_profiles
from labfleet.config.services import ServicesField
from labfleet.config.tls import TLSSection
from labfleet.config.units import Duration


class HubSection(Section):
    base_url: str = Field(default="/", pattern=r"^/([A-Za-z0-9._~-]+/)*$")
    db_url: str | None = Field(
        default=None,
        description="SQLAlchemy URL (e.g. postgresql://...); default: sqlite in the data "
        "directory. 'env:VAR' or 'file:/path' read it in the hub process; $LABFLEET_DB_URL, "
        "when set, overrides it (keeps passwords out of the file).",
    )
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    concurrent_spawn_limit: int = Field(default=100, ge=0)
    extra_config: dict[str, dict[str, Any]] = Field(
        default_factory=dict,
        description="Escape hatch: raw traitlets, e.g. {JupyterHub: {shutdown_on_logout: true}}.",
    )

    @field_validator("extra_config")
    @classmethod
    def _class_names(cls, value: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
        for name in value:
            if not name.isidentifier() or not name[0].isupper():
                raise ValueError(
                    f"{name!r} is not a traitlets class name (e.g. 'JupyterHub', 'Spawner')"
                )
        return value


class ProxySection(Section):
    kind: Literal["labfleet", "chp"] = "labfleet"
    workers: int = Field(default=1, ge=1, le=64, description="labfleet-proxy worker processes.")
    chp_command: list[str] | None = Field(
        default=None, description="Command for Node configurable-http-proxy (kind: chp)."
    )
    trusted_proxies: list[str] = Field(
        default_factory=list,
        description=(
            "IP networks (CIDR) of reverse proxies in front of labfleet-proxy whose "
            "X-Real-Ip/X-Forwarded-* headers are believed; from anyone else they are replaced."
        ),
    )

    @field_validator("trusted_proxies")
    @classmethod
    def _networks(cls, value: list[str]) -> list[str]:
        import ipaddress

        for item in value:
            try:
                ipaddress.ip_network(item, strict=False)
            except ValueError:
                raise ValueError(f"{item!r} is not an IP network such as 10.0.0.0/8") from None
        return value


class CullingSection(Section):
    """jupyterhub-idle-culler settings; on by default so idle servers free resources."""

    enabled: bool = True
    timeout: Duration = Field(default=3600, description="Stop servers idle this long.")
    every: Duration = Field(default=300, description="How often to check.")
    max_age: Duration = Field(default=0, description="Stop servers older than this (0: never).")
    users: bool = Field(default=False, description="Also delete idle users (not their files).")

    @model_validator(mode="after")
    def _positive(self) -> CullingSection:
        if self.enabled and (self.timeout <= 0 or self.every <= 0):
            raise ValueError("culling.timeout and culling.every must be positive when enabled")
        return self


class NamedServerLimits(Section):
    """Per-group and per-user exceptions to ``named_server_limit`` (highest applicable wins)."""

    groups: dict[str, int] = Field(default_factory=dict)
    users: dict[str, int] = Field(default_factory=dict)


class ServersSection(Section):
    launcher: Literal["forkserver", "exec"] = Field(
        default="forkserver",
        description="How local servers start: forkserver (a warm process that has already "
        "imported the server stack forks one per user; falls back to exec on any failure) "
        "or exec (a fresh process each time).",
    )
    default_url: str = Field(default="/lab", pattern=r"^/[^\s]*$")
    start_timeout: Duration = 120
    http_timeout: Duration = 60
    named_servers: bool = False
    named_server_limit: int = Field(default=0, ge=0, description="0: no limit.")
    named_server_limits: NamedServerLimits = Field(default_factory=NamedServerLimits)


class BrandingSection(Section):
    """How the hub's pages look: a name, a logo, one announcement for everyone."""

    name: str | None = Field(
        default=None, max_length=80, description="Shown in page titles and on the dashboard."
    )
    logo: str | None = Field(default=None, description="Path to a PNG/SVG logo for the nav bar.")
    announcement: str | None = Field(
        default=None, max_length=500, description="A banner on every hub page (plain text)."
    )


class DashboardSection(Section):
    """The usage dashboard at /services/dashboard/ (embedded platform)."""

    enabled: bool = True
    sample_every: Duration = Field(default=30, description="Seconds between usage samples.")


class FleetConfig(Section):
    """The root of ``labfleet.yaml``."""

    name: str = Field(default="labfleet", pattern=r"^[a-z][a-z0-9-]{0,39}$")
    hub: HubSection = Field(default_factory=HubSection)
    auth: AuthSection = Field(default_factory=AuthSection)
    proxy: ProxySection = Field(default_factory=ProxySection)
    servers: ServersSection = Field(default_factory=ServersSection)
    profiles: list[Profile] = Field(default_factory=default_profiles, min_length=1)
    culling: CullingSection = Field(default_factory=CullingSection)
    kubernetes: KubernetesField = Field(default_factory=KubernetesSection)
    local: LocalSection = Field(default_factory=LocalSection)
    branding: BrandingSection = Field(default_factory=BrandingSection)
    dashboard: DashboardSection = Field(default_factory=DashboardSection)
    services: ServicesField = Field(default_factory=list)
    tls: TLSSection | None = None

    @field_validator("profiles")
    @classmethod
    def _unique_profiles(cls, value: list[Profile]) -> list[Profile]:
        seen: set[str] = set()
        for profile in value:
            if profile.slug in seen:
                raise ValueError(f"two profiles share the slug {profile.slug!r}")
            seen.add(profile.slug)
        if sum(p.default for p in value) > 1:
            raise ValueError("only one profile may be the default")
        return value

    def default_profile(self) -> Profile:
        return next((p for p in self.profiles if p.default), self.profiles[0])
