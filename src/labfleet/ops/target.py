"""Which platform an ops command acts on: data directory, config, hub database URL.

Read exactly as the hub reads them (``LABFLEET_*`` variables, ``LABFLEET_CONFIG``, the
config's ``hub.db_url`` with its ``env:``/``file:`` reference), so ``labfleet db upgrade`` in a
Kubernetes init container with the hub's environment finds the hub's database.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from labfleet.auth.secret_refs import resolve_secret
from labfleet.config.load import load_config
from labfleet.config.model import FleetConfig
from labfleet.hub.settings import hub_db_url
from labfleet.runtime import Runtime


@dataclass(frozen=True)
class Target:
    runtime: Runtime
    config: FleetConfig
    config_path: Path | None
    db_url: str  # resolved: holds a password when the URL does

    @property
    def db_kind(self) -> str:
        return "sqlite" if self.db_url.startswith("sqlite") else "postgresql"

    @property
    def sqlite_path(self) -> Path | None:
        if not self.db_url.startswith("sqlite:///"):
            return None
        return Path(self.db_url.split(":///", 1)[1])


def locate(
    data_dir: Path | None = None,
    config_path: str | Path | None = None,
    environ: Mapping[str, str] | None = None,
) -> Target:
    """The platform of ``data_dir`` (else ``$LABFLEET_DATA_DIR``) and its config."""
    env = dict(os.environ if environ is None else environ)
    if data_dir is not None:
        env["LABFLEET_DATA_DIR"] = str(data_dir)
    runtime = Runtime.from_env(env)
    path = config_path or env.get("LABFLEET_CONFIG") or running_config(runtime) or None
    config = load_config(path)
    url = resolve_secret(hub_db_url(config, runtime), env)
    return Target(runtime, config, Path(path).resolve() if path else None, url)


def running_config(runtime: Runtime) -> str | None:
    """The config a running ``labfleet up`` uses (its ``state/platform.json`` record)."""
    try:
        record = json.loads((runtime.state_dir / "platform.json").read_text())
    except (OSError, ValueError):
        return None
    config = record.get("config") if isinstance(record, dict) else None
    return config if isinstance(config, str) and Path(config).is_file() else None


def redact(url: str) -> str:
    """The URL without its password, for messages."""
    from sqlalchemy.engine import make_url

    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # an unparsable URL is shown as its scheme only
        return url.split(":", 1)[0] + ":…"
