"""scrypt hashes: salted, parameters stored, constant-time verify, rehash when weaker."""

from __future__ import annotations

import pytest

from labfleet.auth.hashing import (
    DEFAULT_PARAMS,
    MAX_PASSWORD,
    ScryptParams,
    generate_password,
    hash_password,
    needs_rehash,
    parse_hash,
    verify_password,
)

FAST = ScryptParams(n=2**10)


def test_default_cost_is_memory_hard() -> None:
    assert 128 * DEFAULT_PARAMS.r * DEFAULT_PARAMS.n >= 32 * 1024 * 1024


def test_default_hash_round_trip() -> None:
    encoded = hash_password("s3cret-pass")
    assert verify_password("s3cret-pass", encoded)
    assert not verify_password("s3cret-pasS", encoded)
    assert "s3cret" not in encoded


def test_same_password_gets_different_salts() -> None:
    first, second = hash_password("pw", FAST), hash_password("pw", FAST)
    assert first != second
    assert parse_hash(first)[1] != parse_hash(second)[1]


def test_parameters_are_stored_with_the_hash() -> None:
    params, salt, key = parse_hash(hash_password("pw", FAST))
    assert params == FAST
    assert len(salt) == 16 and len(key) == 32


def test_weaker_hashes_need_rehash() -> None:
    assert needs_rehash(hash_password("pw", FAST), DEFAULT_PARAMS)
    assert not needs_rehash(hash_password("pw", FAST), FAST)
    assert needs_rehash("not a hash", FAST)


@pytest.mark.parametrize("bad", ["", "md5$x", "scrypt$3$8$1$AAAA$AAAA", "scrypt$1024$8$1$!!$AAAA"])
def test_malformed_hashes_are_errors(bad: str) -> None:
    with pytest.raises(ValueError):
        verify_password("pw", bad)


def test_huge_password_is_refused() -> None:
    encoded = hash_password("pw", FAST)
    assert not verify_password("x" * (MAX_PASSWORD + 1), encoded)
    with pytest.raises(ValueError):
        hash_password("x" * (MAX_PASSWORD + 1), FAST)


def test_unicode_passwords_work() -> None:
    encoded = hash_password("pässwörd 秘密", FAST)
    assert verify_password("pässwörd 秘密", encoded)


def test_generated_passwords_are_strong_and_distinct() -> None:
    passwords = {generate_password() for _ in range(50)}
    assert len(passwords) == 50
    assert all(len(p) >= 24 for p in passwords)
