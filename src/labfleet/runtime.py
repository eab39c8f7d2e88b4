"""Where and how the hub runs: facts that are not in labfleet.yaml.

The settings builders are pure functions of ``(FleetConfig, Runtime)``; the
runtime carries the paths and addresses decided by whoever starts the hub
(``labfleet up`` locally, the hub pod's environment on Kubernetes).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

Platform = Literal["local", "kubernetes"]


@dataclass(frozen=True)
class Runtime:
    data_dir: Path
    platform: Platform = "local"
    ip: str = "127.0.0.1"
    port: int = 8000
    hub_port: int = 0  # 0: let the builder pick a default
    proxy_api_port: int = 0
    #: database URL from the environment (a Kubernetes Secret); overrides hub.db_url
    db_url: str | None = None

    @property
    def secrets_dir(self) -> Path:
        return self.data_dir / "secrets"

    @property
    def homes_dir(self) -> Path:
        return self.data_dir / "homes"

    @property
    def state_dir(self) -> Path:
        return self.data_dir / "state"

    @property
    def logs_dir(self) -> Path:
        return self.data_dir / "logs"

    @property
    def accounts_db(self) -> Path:
        return self.data_dir / "accounts.sqlite"

    @property
    def hub_db(self) -> Path:
        return self.data_dir / "jupyterhub.sqlite"

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None) -> Runtime:
        """Read the runtime from ``LABFLEET_*`` variables (set by ``labfleet up`` or the pod)."""
        env = os.environ if environ is None else environ
        platform = env.get("LABFLEET_PLATFORM", "local")
        if platform not in ("local", "kubernetes"):
            raise ValueError(f"LABFLEET_PLATFORM={platform!r}: expected 'local' or 'kubernetes'")
        return cls(
            data_dir=Path(env.get("LABFLEET_DATA_DIR", "labfleet-data")).resolve(),
            platform=platform,  # type: ignore[arg-type]
            ip=env.get("LABFLEET_IP", "127.0.0.1"),
            port=int(env.get("LABFLEET_PORT", "8000")),
            hub_port=int(env.get("LABFLEET_HUB_PORT", "0")),
            proxy_api_port=int(env.get("LABFLEET_PROXY_API_PORT", "0")),
            db_url=env.get("LABFLEET_DB_URL") or None,
        )

    def to_env(self) -> dict[str, str]:
        return {
            "LABFLEET_DATA_DIR": str(self.data_dir),
            "LABFLEET_PLATFORM": self.platform,
            "LABFLEET_IP": self.ip,
            "LABFLEET_PORT": str(self.port),
            "LABFLEET_HUB_PORT": str(self.hub_port),
            "LABFLEET_PROXY_API_PORT": str(self.proxy_api_port),
        }
