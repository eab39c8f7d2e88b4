"""Username normalisation: one rule for store, login and allow-lists; hostile names refused."""

from __future__ import annotations

import re

import pytest

from labfleet.config.auth import AuthSection
from labfleet.naming import user_slug
from labfleet.usernames import (
    MAX_USERNAME,
    InvalidUsername,
    canonical_username,
    normalize_username,
    normalize_usernames,
    username_problem,
)


@pytest.mark.parametrize(
    "raw", ["Alice", "ALICE", "alice ", " alice", "\uff41\uff4c\uff49\uff43\uff45", "Alice\t"]
)
def test_spellings_of_alice_agree(raw: str) -> None:
    assert normalize_username(raw) == "alice"


def test_allow_list_and_login_agree() -> None:
    section = AuthSection.model_validate(
        {"allowed_users": ["Alice", "BOB "], "admin_users": ["ALICE"]}
    )
    assert section.allowed_users == ["alice", "bob"]
    assert section.admin_users == ["alice"]
    assert normalize_username("ALICE") in section.allowed_users


@pytest.mark.parametrize(
    "raw",
    [
        "../x",
        "..",
        ".",
        "a/b",
        "a\\b",
        "-rf",
        "--uid=0",
        "a\nb",
        "a\x00b",
        "a b",
        "a\u200bb",  # zero-width space
        "a;rm",
        "alice$",
        "<script>",
        "",
        "   ",
        "x" * (MAX_USERNAME + 1),
        "x" * 10_000_000,
        "\u0430lice",  # Cyrillic a + Latin lice: a look-alike of "alice"
        "paypa\u0406",  # Latin + Cyrillic I
        "a..b",
        ".hidden",
        "@alice",
    ],
)
def test_hostile_names_are_refused(raw: str) -> None:
    with pytest.raises(InvalidUsername):
        normalize_username(raw)


@pytest.mark.parametrize(
    "raw", ["alice", "alice@example.com", "a.lice", "a_lice", "秀樹", "üser", "9z9", "\u043e" * 3]
)
def test_ordinary_names_are_kept(raw: str) -> None:
    assert normalize_username(raw) == canonical_username(raw)


def test_longest_name_is_accepted_and_slugged_safely() -> None:
    name = normalize_username("x" * MAX_USERNAME)
    slug = user_slug(name)
    assert len(slug) <= 63 and re.fullmatch(r"[a-z]([a-z0-9-]*[a-z0-9])?", slug)


def test_canonical_never_raises_and_is_idempotent() -> None:
    for raw in ["Straße", "ÅNGSTRÖM", "ﬁle", "x" * 10_000]:
        once = canonical_username(raw)
        assert canonical_username(once) == once or len(raw) > 512


def test_huge_input_is_not_normalised() -> None:
    raw = "A" * 10_000_000
    assert canonical_username(raw) is raw
    assert username_problem(raw) is not None


def test_problem_messages_say_why() -> None:
    assert "'/'" in (username_problem("a/b") or "")
    assert "start" in (username_problem("-rf") or "")


def test_config_rejects_bad_names_with_the_key() -> None:
    with pytest.raises(ValueError, match="allowed_users"):
        AuthSection.model_validate({"allowed_users": ["ok", "a/b"]})


def test_normalize_usernames_deduplicates() -> None:
    assert normalize_usernames(["Bob", "bob", "BOB ", "ann"]) == ["bob", "ann"]
