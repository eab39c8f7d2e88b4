"""The ``tls:`` section: HTTPS for ``labfleet up`` from files or from ACME.

Exactly one source: ``cert``/``key`` files (reloaded by the proxy when they
change) or ``acme`` (HTTP-01 on ``http_port``, renewed before expiry). The
section is absent by default: plain HTTP, as before.
"""

from __future__ import annotations

import re
from pathlib import Path

from pydantic import Field, field_validator, model_validator

from labfleet.config.base import Section

LETS_ENCRYPT_DIRECTORY = "https://acme-v02.api.letsencrypt.org/directory"
_LABEL = r"[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?"
_DOMAIN = re.compile(rf"^(?=.{{1,253}}$)({_LABEL}\.)*{_LABEL}$")


class AcmeSection(Section):
    """Certificates from an ACME server (Let's Encrypt unless ``directory`` says otherwise)."""

    email: str = Field(pattern=r"^[^@\s]+@[^@\s]+$")
    domains: list[str] = Field(min_length=1)
    directory: str = Field(default=LETS_ENCRYPT_DIRECTORY, pattern=r"^https?://")
    http_port: int = Field(default=80, ge=1, le=65535)
    # renew when this fraction of the certificate's lifetime has passed
    renew_at: float = Field(default=2 / 3, gt=0, lt=1)
    # PEM bundle to trust for the directory (a private ACME server such as Pebble)
    ca_bundle: Path | None = None

    @field_validator("domains")
    @classmethod
    def _names(cls, value: list[str]) -> list[str]:
        names = [d.strip().lower() for d in value]
        for name in names:
            if not _DOMAIN.match(name):
                raise ValueError(f"{name!r} is not a DNS name (HTTP-01 needs one, no wildcards)")
        if len(set(names)) != len(names):
            raise ValueError("a domain is listed twice")
        return names


class TLSSection(Section):
    """``tls: {cert, key}`` or ``tls: {acme: {...}}``; ``http_port`` redirects plain HTTP."""

    cert: Path | None = None  # absolute paths: the hub reads them from its own directory
    key: Path | None = None
    acme: AcmeSection | None = None
    # plain-HTTP listener that redirects to https (ACME: always acme.http_port)
    http_port: int | None = Field(default=None, ge=1, le=65535)
    hsts_max_age: int = Field(default=31536000, ge=0)
    # how often the proxy looks at the certificate files (seconds)
    reload_interval: float = Field(default=5.0, gt=0)

    @field_validator("cert", "key")
    @classmethod
    def _absolute(cls, value: Path | None) -> Path | None:
        if value is not None and not value.is_absolute():
            raise ValueError(f"{value} must be an absolute path")
        return value

    @model_validator(mode="after")
    def _one_source(self) -> TLSSection:
        files = self.cert is not None or self.key is not None
        if files and self.acme is not None:
            raise ValueError("give either cert/key or acme, not both")
        if files and (self.cert is None or self.key is None):
            raise ValueError("cert and key go together")
        if not files and self.acme is None:
            raise ValueError("give cert and key files, or an acme section")
        if self.acme is not None and self.http_port not in (None, self.acme.http_port):
            raise ValueError("with acme, the plain-HTTP port is acme.http_port")
        return self

    @property
    def redirect_port(self) -> int | None:
        return self.acme.http_port if self.acme is not None else self.http_port
