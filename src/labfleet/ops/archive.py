"""The backup archive: a gzipped tar with a manifest of checksums, optionally encrypted.

Layout inside the tar (every member a regular file listed in ``manifest.json`` with its
SHA-256)::

    manifest.json
    db/jupyterhub.sqlite | db/hub.pgdump     the hub database
    data/<name>.sqlite                        other sqlite files (the account store …)
    secrets/<name>                            generated secrets
    config/labfleet.yaml                      the config file, when one was used

An encrypted archive is ``MAGIC + salt + Fernet token`` of that tar, the key derived from a
passphrase with scrypt, so a stolen backup file does not hand over the hub's secrets.
Reading verifies everything before anything is written anywhere.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import os
import tarfile
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

FORMAT = 1
MANIFEST = "manifest.json"
MAGIC = b"LABFLEET-BACKUP-ENCRYPTED-1\n"
_SALT_BYTES = 16
_SCRYPT_N = 2**15


class ArchiveError(Exception):
    """The archive is unreadable, tampered with, or needs a passphrase it did not get."""


@dataclass
class Manifest:
    labfleet_version: str
    jupyterhub_version: str
    created: str
    hub_db_kind: str  # "sqlite", "postgresql" or "none"
    alembic_revision: str | None = None
    config: str | None = None
    files: dict[str, str] = field(default_factory=dict)  # member name -> sha256

    def to_json(self) -> bytes:
        data = {"format": FORMAT, **self.__dict__}
        return json.dumps(data, indent=2, sort_keys=True).encode()

    @classmethod
    def from_json(cls, raw: bytes) -> Manifest:
        try:
            data: dict[str, Any] = json.loads(raw)
            if data.pop("format") != FORMAT:
                raise ArchiveError("unsupported backup format")
            return cls(**data)
        except (ValueError, TypeError, KeyError) as exc:
            raise ArchiveError(f"the manifest is not readable: {exc}") from None


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _key(passphrase: str, salt: bytes) -> bytes:
    raw = Scrypt(salt=salt, length=32, n=_SCRYPT_N, r=8, p=1).derive(passphrase.encode())
    return base64.urlsafe_b64encode(raw)


def encrypt(blob: bytes, passphrase: str) -> bytes:
    salt = os.urandom(_SALT_BYTES)
    return MAGIC + salt + Fernet(_key(passphrase, salt)).encrypt(blob)


def decrypt(blob: bytes, passphrase: str | None) -> bytes:
    if not blob.startswith(MAGIC):
        return blob
    if not passphrase:
        raise ArchiveError(
            "the archive is encrypted: give --passphrase-file or $LABFLEET_BACKUP_PASSPHRASE"
        )
    body = blob[len(MAGIC) :]
    salt, token = body[:_SALT_BYTES], body[_SALT_BYTES:]
    try:
        return Fernet(_key(passphrase, salt)).decrypt(token)
    except InvalidToken:
        raise ArchiveError("wrong passphrase, or the archive is corrupted") from None


def _safe_name(name: str) -> bool:
    path = PurePosixPath(name)
    return bool(name) and not path.is_absolute() and ".." not in path.parts and "\\" not in name


def pack(members: dict[str, bytes], manifest: Manifest, passphrase: str | None = None) -> bytes:
    """Build the archive bytes; the manifest gets every member's checksum."""
    manifest.files = {name: sha256(data) for name, data in sorted(members.items())}
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for name, data in [(MANIFEST, manifest.to_json()), *sorted(members.items())]:
            if not _safe_name(name):
                raise ValueError(f"bad member name {name!r}")
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mode = 0o600
            info.mtime = 0
            tar.addfile(info, io.BytesIO(data))
    blob = buffer.getvalue()
    return encrypt(blob, passphrase) if passphrase else blob


def unpack(blob: bytes, passphrase: str | None = None) -> tuple[Manifest, dict[str, bytes]]:
    """Read and verify an archive completely; raises :class:`ArchiveError` on any defect."""
    plain = decrypt(blob, passphrase)
    members: dict[str, bytes] = {}
    try:
        with tarfile.open(fileobj=io.BytesIO(plain), mode="r:gz") as tar:
            for info in tar:
                if not info.isfile() or not _safe_name(info.name) or info.name in members:
                    raise ArchiveError(f"unexpected member {info.name!r}")
                handle = tar.extractfile(info)
                if handle is None:
                    raise ArchiveError(f"unreadable member {info.name!r}")
                members[info.name] = handle.read()
    except (tarfile.TarError, OSError, EOFError) as exc:
        raise ArchiveError(f"not a labfleet backup, or a corrupted one ({exc})") from None
    if MANIFEST not in members:
        raise ArchiveError("not a labfleet backup (no manifest.json)")
    manifest = Manifest.from_json(members.pop(MANIFEST))
    if set(members) != set(manifest.files):
        raise ArchiveError("the archive's members do not match its manifest")
    for name, data in members.items():
        if sha256(data) != manifest.files[name]:
            raise ArchiveError(f"checksum mismatch for {name}: the archive is corrupted")
    return manifest, members


def write_atomically(path: Path, blob: bytes) -> None:
    """Write ``path`` (0600) so that a crash never leaves a half-written backup under its name."""
    path = path.resolve()
    tmp = path.with_name(f".{path.name}.partial-{os.getpid()}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(blob)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
