"""Generated secrets: created once, stored 0600, never logged.

Locally they live in ``<data_dir>/secrets/`` (one file each, directory 0700);
in a hub pod they arrive as environment variables from a Kubernetes Secret.
"""

from __future__ import annotations

import os
import secrets as _random
from collections.abc import Mapping
from dataclasses import dataclass, fields
from pathlib import Path

#: secret name -> number of random bytes (hex-encoded on disk / in env)
_SIZES = {
    "cookie_secret": 32,
    "proxy_token": 32,
    "crypt_key": 32,
    "supervisor_token": 32,
    "metrics_token": 32,
}
#: may be missing from a hub pod's environment (a Secret made before it existed)
_OPTIONAL = ("metrics_token",)
ENV_PREFIX = "LABFLEET_SECRET_"


@dataclass(frozen=True, repr=False)
class HubSecrets:
    cookie_secret: str
    proxy_token: str
    crypt_key: str
    supervisor_token: str
    #: Prometheus scrapes /hub/metrics with it (read:metrics only); "" turns that service off
    metrics_token: str = ""

    def __repr__(self) -> str:  # never print secret values by accident
        return "HubSecrets(<redacted>)"

    def to_env(self) -> dict[str, str]:
        return {
            ENV_PREFIX + f.name.upper(): getattr(self, f.name)
            for f in fields(self)
            if getattr(self, f.name)
        }


def _write_new(path: Path, value: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(value + "\n")


def ensure_secrets(secrets_dir: Path) -> HubSecrets:
    """Read the secrets, generating any that are missing (idempotent)."""
    secrets_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.chmod(secrets_dir, 0o700)
    for name, size in _SIZES.items():
        path = secrets_dir / name
        if not path.exists():
            _write_new(path, _random.token_hex(size))
    return read_secrets(secrets_dir)


def read_secrets(secrets_dir: Path) -> HubSecrets:
    values = {}
    for name in _SIZES:
        path = secrets_dir / name
        if path.stat().st_mode & 0o077:
            os.chmod(path, 0o600)
        values[name] = path.read_text().strip()
    return HubSecrets(**values)


def secrets_from_env(environ: Mapping[str, str]) -> HubSecrets:
    required = [n for n in _SIZES if n not in _OPTIONAL]
    missing = [ENV_PREFIX + n.upper() for n in required if ENV_PREFIX + n.upper() not in environ]
    if missing:
        raise RuntimeError(f"missing secret environment variables: {', '.join(missing)}")
    return HubSecrets(**{n: environ.get(ENV_PREFIX + n.upper(), "") for n in _SIZES})


#: the secrets a rotation may replace (the supervisor token is internal and never rotated)
ROTATABLE = ("cookie_secret", "proxy_token", "crypt_key")


def new_secret_value(name: str) -> str:
    """A fresh random value for ``name`` (hex, the same size as a generated one)."""
    return _random.token_hex(_SIZES[name])


def replace_secret(secrets_dir: Path, name: str, value: str) -> None:
    """Atomically replace one secret file (0600): readers see the old or the new value."""
    if name not in _SIZES:
        raise ValueError(f"unknown secret {name!r}")
    tmp = secrets_dir / f".{name}.new"
    tmp.unlink(missing_ok=True)
    _write_new(tmp, value)
    os.replace(tmp, secrets_dir / name)


def crypt_keys(value: str) -> list[str]:
    """``JUPYTERHUB_CRYPT_KEY``-style list: ``new;old`` during a rotation, newest first."""
    return [key.strip() for key in value.split(";") if key.strip()]


def secret_names() -> tuple[str, ...]:
    return tuple(_SIZES)
