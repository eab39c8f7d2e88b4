"""Password hashes: scrypt with a per-password salt, parameters stored with the hash.

Format: ``scrypt$<n>$<r>$<p>$<salt b64>$<key b64>``. Storing ``n, r, p``
with each hash lets the defaults rise later: old hashes still verify, and
:func:`needs_rehash` tells the login path to upgrade them.

The hub hands the scrypt work to worker processes (:func:`offload_to`, see
:mod:`labfleet.auth.hash_pool`); everything else (the CLI, tests) derives
in-process. Either way the same bytes come out.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from collections.abc import Callable
from dataclasses import dataclass

_SCHEME = "scrypt"
_SALT_BYTES = 16
_KEY_BYTES = 32
#: Longest password hashed; longer input is refused (scrypt would accept it, but a
#: megabyte "password" is an attack, not a secret).
MAX_PASSWORD = 1024


@dataclass(frozen=True)
class ScryptParams:
    """scrypt cost: memory is ``128 * r * n`` bytes (32 MiB for the default)."""

    n: int = 2**15
    r: int = 8
    p: int = 1

    def __post_init__(self) -> None:
        if self.n < 2 or self.n & (self.n - 1):
            raise ValueError("scrypt n must be a power of two >= 2")
        if not (1 <= self.r <= 64 and 1 <= self.p <= 16):
            raise ValueError("scrypt r must be in 1..64 and p in 1..16")

    @property
    def maxmem(self) -> int:
        return 2 * 128 * self.r * self.n * self.p + 1024 * 1024

    def weaker_than(self, other: ScryptParams) -> bool:
        return self.n * self.r * self.p < other.n * other.r * other.p


DEFAULT_PARAMS = ScryptParams()


class OffloadError(RuntimeError):
    """The hash could not be computed elsewhere; the caller derives in-process instead."""


#: (secret, salt, params, key length) → key, computed outside this thread's process
Deriver = Callable[[bytes, bytes, ScryptParams, int], bytes]
_offload: Deriver | None = None


def offload_to(deriver: Deriver | None) -> None:
    """Compute every later hash of this process with ``deriver`` (None: in-process again)."""
    global _offload
    _offload = deriver


def _derive(password: str, salt: bytes, params: ScryptParams) -> bytes:
    secret = password.encode("utf-8", "surrogatepass")
    deriver = _offload
    if deriver is not None:
        try:
            return deriver(secret, salt, params, _KEY_BYTES)
        except OffloadError:
            pass  # a broken worker never breaks sign-in: same work, here
    return hashlib.scrypt(
        secret,
        salt=salt,
        n=params.n,
        r=params.r,
        p=params.p,
        maxmem=params.maxmem,
        dklen=_KEY_BYTES,
    )


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def hash_password(password: str, params: ScryptParams = DEFAULT_PARAMS) -> str:
    """A fresh salted hash of ``password``."""
    if len(password) > MAX_PASSWORD:
        raise ValueError(f"passwords are limited to {MAX_PASSWORD} characters")
    salt = secrets.token_bytes(_SALT_BYTES)
    key = _derive(password, salt, params)
    return f"{_SCHEME}${params.n}${params.r}${params.p}${_b64(salt)}${_b64(key)}"


def parse_hash(encoded: str) -> tuple[ScryptParams, bytes, bytes]:
    """Split a stored hash into its parameters, salt and key (ValueError if malformed)."""
    parts = encoded.split("$")
    if len(parts) != 6 or parts[0] != _SCHEME:
        raise ValueError("not a labfleet scrypt hash")
    params = ScryptParams(n=int(parts[1]), r=int(parts[2]), p=int(parts[3]))
    salt = base64.b64decode(parts[4], validate=True)
    key = base64.b64decode(parts[5], validate=True)
    return params, salt, key


def verify_password(password: str, encoded: str) -> bool:
    """True when ``password`` matches ``encoded``; the key comparison is constant-time."""
    params, salt, key = parse_hash(encoded)
    if len(password) > MAX_PASSWORD:
        # Still spend the hash work, so a long password is not a timing oracle.
        _derive("", salt, params)
        return False
    return hmac.compare_digest(_derive(password, salt, params), key)


def needs_rehash(encoded: str, params: ScryptParams = DEFAULT_PARAMS) -> bool:
    """True when ``encoded`` was made with weaker parameters than ``params``."""
    try:
        stored, _, _ = parse_hash(encoded)
    except ValueError:
        return True
    return stored.weaker_than(params)


def dummy_hash(params: ScryptParams = DEFAULT_PARAMS) -> str:
    """A hash of a random secret, verified against for unknown users (same work, no match)."""
    return hash_password(secrets.token_urlsafe(32), params)


def generate_password(nbytes: int = 18) -> str:
    """A strong random password (24 URL-safe characters for the default)."""
    return secrets.token_urlsafe(nbytes)
