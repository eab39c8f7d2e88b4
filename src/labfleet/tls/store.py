"""Where the TLS files live and how they are written (0600, atomically)."""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from labfleet.config.tls import TLSSection


@dataclass(frozen=True)
class CertStore:
    """``<data dir>/tls/``: the ACME account key, the served key and full chain."""

    root: Path

    @classmethod
    def for_data_dir(cls, data_dir: Path) -> CertStore:
        return cls(data_dir / "tls")

    @property
    def account_key(self) -> Path:
        return self.root / "account.key"

    @property
    def cert(self) -> Path:
        return self.root / "fullchain.pem"

    @property
    def key(self) -> Path:
        return self.root / "privkey.pem"

    def ensure_dir(self) -> None:
        self.root.mkdir(mode=0o700, parents=True, exist_ok=True)
        os.chmod(self.root, 0o700)

    def load_or_create_account_key(self) -> rsa.RSAPrivateKey:
        """The ACME account is the key: keep it so renewals use the same account."""
        self.ensure_dir()
        if self.account_key.exists():
            key = serialization.load_pem_private_key(self.account_key.read_bytes(), None)
            if not isinstance(key, rsa.RSAPrivateKey):
                raise ValueError(f"{self.account_key} is not an RSA key")
            return key
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        write_private(self.account_key, pem_private(key))
        return key

    def write_pair(self, key_pem: bytes, chain_pem: bytes) -> None:
        """Key first, then chain: the proxy only loads a pair that matches."""
        self.ensure_dir()
        write_private(self.key, key_pem)
        write_private(self.cert, chain_pem)


def new_cert_key() -> tuple[ec.EllipticCurvePrivateKey, bytes]:
    key = ec.generate_private_key(ec.SECP256R1())
    return key, pem_private(key)


def pem_private(key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def write_private(path: Path, data: bytes) -> None:
    """Write next to ``path`` with mode 0600 and rename over it (never half a file)."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def served_files(tls: TLSSection, data_dir: Path) -> tuple[Path, Path]:
    """(certificate chain, key) the proxy serves: the given files, or the ACME store's."""
    if tls.cert is not None and tls.key is not None:
        return tls.cert, tls.key
    store = CertStore.for_data_dir(data_dir)
    return store.cert, store.key
