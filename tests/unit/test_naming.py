"""Slugs are unique, DNS-safe and never pass hostile input through (BAD_INPUTS 36-38, 41)."""

from __future__ import annotations

import itertools
import re

import pytest

from labfleet.naming import MAX_SLUG, safe_slug, server_slug, system_account, user_slug

DNS_LABEL = re.compile(r"^[a-z]([a-z0-9-]*[a-z0-9])?$")
HOSTILE = [
    "Alice",
    "alice",
    "alice.",
    "a.lice",
    "a_lice",
    "alice@x.com",
    "alice-x-com",
    "ALICE",
    "alice ",
    " alice",
    "秀樹",
    "üser",
    "user",
    "9z9",
    "-start",
    "endswith-",
    "username--servername",
    "",
    "a" * 63,
    "a" * 64,
    "a" * 65,
    "../x",
    "-rf",
    "--uid=0",
    "root",
    "a b",
    "a\nb",
    "x" * 10_000,
    "\u0430lice",  # Cyrillic a
    "user-has-dash",
    "user-has",
    "a---12345678",
    "x---" + "0" * 8,
]


@pytest.mark.parametrize("name", HOSTILE)
def test_slug_is_a_short_dns_label(name: str) -> None:
    slug = user_slug(name)
    assert DNS_LABEL.match(slug), slug
    assert len(slug) <= MAX_SLUG


def test_slugs_are_pairwise_distinct() -> None:
    slugs = {name: user_slug(name) for name in HOSTILE}
    for (a, sa), (b, sb) in itertools.combinations(slugs.items(), 2):
        assert sa != sb, (a, b)


def test_plain_names_are_kept() -> None:
    assert user_slug("alice") == "alice"
    assert user_slug("user-has-dash") == "user-has-dash"


def test_server_slug_collision_upstream_case() -> None:
    # CVE-2020-15110: user `user-has-dash` default server vs user `user-has` server `dash`
    assert server_slug("user-has-dash") != server_slug("user-has", "dash")
    assert server_slug("user-has", "dash") == "user-has--dash"


def test_server_slugs_never_collide_with_hashed_users() -> None:
    names = ["a", "a-b", "A", "a.b", "a--b"]
    servers = ["", "b", "B", "x", "b-c"]
    seen: dict[str, tuple[str, str]] = {}
    for user, server in itertools.product(names, servers):
        slug = server_slug(user, server)
        assert slug not in seen, (seen[slug], (user, server))
        seen[slug] = (user, server)


def test_system_account_never_an_existing_system_name() -> None:
    assert system_account("root") == "lf-root"
    assert len(system_account("x" * 200)) <= 32


def test_safe_slug_respects_max_length() -> None:
    assert len(safe_slug("Some Very Long Name" * 5, max_length=20)) <= 20
