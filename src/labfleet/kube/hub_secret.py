"""The hub Secret: cookie secret, proxy token, crypt key, supervisor token.

Generation is an effect done once (:func:`generate_hub_secrets`); the builder
only wraps given values. The Secret is marked ``create-only``: the apply
engine creates it when missing and never overwrites an existing one, so the
values survive every re-apply (the Helm ``lookup`` trick, made explicit).
"""

from __future__ import annotations

import base64
import secrets as _random
from dataclasses import fields

from labfleet.config.model import FleetConfig
from labfleet.kube.meta import (
    APPLY_CREATE_ONLY,
    APPLY_POLICY,
    COMPONENT_HUB,
    Manifest,
    manifest,
    metadata,
    names_of,
)
from labfleet.secrets import ENV_PREFIX, HubSecrets

SECRET_BYTES = 32


def generate_hub_secrets() -> HubSecrets:
    """Fresh random values (an effect: call once, then keep what the cluster holds)."""
    return HubSecrets(**{f.name: _random.token_hex(SECRET_BYTES) for f in fields(HubSecrets)})


def secret_keys() -> list[str]:
    return [f.name for f in fields(HubSecrets)]


def env_name(key: str) -> str:
    """Environment variable the hub reads a key from (see labfleet.secrets)."""
    return ENV_PREFIX + key.upper()


def hub_secret(config: FleetConfig, values: HubSecrets) -> Manifest:
    names = names_of(config)
    data = {key: base64.b64encode(getattr(values, key).encode()).decode() for key in secret_keys()}
    meta = metadata(
        config, names.hub_secret, COMPONENT_HUB, annotations={APPLY_POLICY: APPLY_CREATE_ONLY}
    )
    return manifest("v1", "Secret", meta, type="Opaque", data=data)
