"""IAP building blocks without a hub: key set caching/refresh, claims, e-mail rules, redaction."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import pytest
from jwt_keys import AUDIENCE, ISSUER, SigningKey, jwks_document, unsigned_token

from labfleet.auth.email_identity import EmailRules, Refused, decide, username_from_email
from labfleet.auth.iap import (
    assertion_kid,
    read_assertion,
    verify_claims,
)
from labfleet.auth.jwks import JwksError, KeySet, check_location, parse_jwks
from labfleet.auth.log_redaction import RedactSecrets, redact
from labfleet.config.auth import AuthSection

KEY = SigningKey("k1")


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_key_set_from_file_refreshes_on_unknown_kid_at_most_every_interval(
    tmp_path: Path,
) -> None:
    path = tmp_path / "jwks.json"
    path.write_bytes(jwks_document(KEY))
    clock = FakeClock()
    keys = KeySet(str(path), min_refresh_interval=30, clock=clock)

    async def scenario() -> None:
        assert await keys.key("k1") is not None
        assert keys.loads == 1
        assert await keys.key("k2") is None  # unknown kid, but refreshed a moment ago
        assert keys.loads == 1
        second = SigningKey("k2")
        path.write_bytes(jwks_document(KEY, second))
        clock.now += 31
        assert await keys.key("k2") is not None
        assert keys.loads == 2
        assert await keys.key("k1") is not None
        assert keys.loads == 2
        clock.now += 3601  # past the cache lifetime
        await keys.key("k1")
        assert keys.loads == 3

    asyncio.run(scenario())


def test_key_set_keeps_cached_keys_when_a_refresh_fails(tmp_path: Path) -> None:
    path = tmp_path / "jwks.json"
    path.write_bytes(jwks_document(KEY))
    clock = FakeClock()
    keys = KeySet(str(path), clock=clock)

    async def scenario() -> None:
        assert await keys.key("k1") is not None
        path.write_text("not json")
        clock.now += 4000
        assert await keys.key("k1") is not None

    asyncio.run(scenario())


def test_key_set_errors_without_any_keys(tmp_path: Path) -> None:
    keys = KeySet(str(tmp_path / "missing.json"))
    with pytest.raises(JwksError):
        asyncio.run(keys.key("k1"))


def test_only_p256_keys_are_used() -> None:
    document = (
        b'{"keys": [{"kid": "rsa", "kty": "RSA", "n": "AQAB", "e": "AQAB"}, {"kty": "EC"}, "junk"]}'
    )
    assert parse_jwks(document) == {}
    assert set(parse_jwks(jwks_document(KEY))) == {"k1"}


@pytest.mark.parametrize("location", ["http://example.com/jwks", "ftp://x/y", "gopher://x"])
def test_insecure_locations_are_refused(location: str) -> None:
    with pytest.raises(JwksError):
        check_location(location)


def test_secure_locations_are_accepted() -> None:
    for location in [
        "https://www.gstatic.com/iap/verify/public_key-jwk",
        "/etc/jwks.json",
        "http://127.0.0.1:9/jwks",
    ]:
        check_location(location)


def test_header_parsing() -> None:
    with pytest.raises(Refused):
        read_assertion([])
    with pytest.raises(Refused):
        read_assertion(["a", "b"])
    with pytest.raises(Refused):
        read_assertion(["x" * 20000])
    assert read_assertion([" tok "]) == "tok"


def test_alg_none_is_refused_before_any_key_lookup() -> None:
    with pytest.raises(Refused) as info:
        assertion_kid(unsigned_token("a@a.com", "k1"))
    assert info.value.status == 401


def test_claims_are_verified() -> None:
    claims = verify_claims(KEY.token("a@a.com"), KEY.private.public_key(), AUDIENCE, ISSUER, 30)
    assert claims["email"] == "a@a.com"
    with pytest.raises(Refused, match="audience"):
        verify_claims(KEY.token("a@a.com"), KEY.private.public_key(), "/other", ISSUER, 30)


def test_small_skew_is_tolerated() -> None:
    import time

    token = KEY.token("a@a.com", exp=int(time.time()) - 10)
    assert verify_claims(token, KEY.private.public_key(), AUDIENCE, ISSUER, 30)
    with pytest.raises(Refused, match="expired"):
        verify_claims(token, KEY.private.public_key(), AUDIENCE, ISSUER, 0)


RULES = EmailRules(
    allowed_users=frozenset({"alice@b.com"}),
    allowed_domains=frozenset({"a.com"}),
    admin_users=frozenset({"boss@c.com"}),
)


def test_email_rules() -> None:
    assert decide("Carol@A.com", RULES).name == "carol@a.com"
    assert decide("alice@b.com", RULES).name == "alice@b.com"
    boss = decide("boss@c.com", RULES)
    assert boss.admin
    for email in [
        "bob@b.com",
        "x@a.com.evil.org",
        "a.com@evil.org",
        None,
        "no-at-sign",
        "a@b@a.com",
    ]:
        with pytest.raises(Refused) as info:
            decide(email, RULES)
        assert info.value.status == 403


def test_strip_domain_only_for_the_single_allowed_domain() -> None:
    rules = EmailRules(allowed_domains=frozenset({"a.com"}), strip_domain=True)
    assert username_from_email("alice@a.com", rules) == "alice"
    assert username_from_email("alice@b.com", rules) == "alice@b.com"


def test_strip_domain_with_several_domains_is_a_config_error() -> None:
    with pytest.raises(ValueError, match="strip_domain"):
        AuthSection.model_validate(
            {
                "kind": "iap",
                "iap": {"audience": "x", "strip_domain": True},
                "allowed_domains": ["a.com", "b.com"],
            }
        )


def test_iap_requires_an_allow_rule_and_audience() -> None:
    with pytest.raises(ValueError, match="allow rule"):
        AuthSection.model_validate({"kind": "iap", "iap": {"audience": "x"}})
    with pytest.raises(ValueError, match="audience"):
        AuthSection.model_validate({"kind": "iap", "allowed_domains": ["a.com"]})


def test_redaction_filter_removes_tokens() -> None:
    token = KEY.token("a@a.com")
    record = logging.LogRecord("x", logging.ERROR, __file__, 1, "headers: %s", (token,), None)
    RedactSecrets().filter(record)
    assert token not in record.getMessage()
    assert "[secret]" in record.getMessage()


def test_redaction_of_query_secrets() -> None:
    line = "403 GET /hub/oauth_callback?code=abc123def4567890&state=eyJzdGF0ZSI6IDF9 (127.0.0.1): x"
    cleaned = redact(line)
    assert "abc123def" not in cleaned and "eyJzdGF0ZSI6IDF9" not in cleaned
    assert cleaned.startswith("403 GET /hub/oauth_callback?code=[secret]&state=[secret]")
    assert redact("200 GET /hub/api/users?state=active") == "200 GET /hub/api/users?state=active"
