"""What a certificate says (issuer, names, validity), for status and for renewal."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.x509.oid import NameOID


@dataclass(frozen=True)
class CertSummary:
    issuer: str
    names: tuple[str, ...]
    not_before: dt.datetime
    not_after: dt.datetime

    def renew_at(self, fraction: float) -> dt.datetime:
        """The instant ``fraction`` of the lifetime has passed (Let's Encrypt: 2/3)."""
        return self.not_before + (self.not_after - self.not_before) * fraction

    def covers(self, names: list[str]) -> bool:
        return set(names) <= set(self.names)

    def line(self) -> str:
        expiry = self.not_after.strftime("%Y-%m-%d %H:%M UTC")
        return f"issuer {self.issuer}; names {', '.join(self.names)}; expires {expiry}"


def summarize(cert: x509.Certificate) -> CertSummary:
    cn = cert.issuer.get_attributes_for_oid(NameOID.COMMON_NAME)
    issuer = str(cn[0].value) if cn else cert.issuer.rfc4514_string()
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        names = tuple(san.get_values_for_type(x509.DNSName))
    except x509.ExtensionNotFound:
        names = ()
    return CertSummary(issuer, names, cert.not_valid_before_utc, cert.not_valid_after_utc)


def read_summary(path: Path) -> CertSummary:
    """The first certificate of a PEM chain (the server's own)."""
    return summarize(x509.load_pem_x509_certificate(path.read_bytes()))
