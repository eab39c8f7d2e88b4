"""spawn.policy without a hub: who may start what, option checks, free-text validation."""

from __future__ import annotations

import pytest

from labfleet.config.profiles import Profile
from labfleet.spawn.policy import (
    NamedServerLimit,
    PolicyError,
    Requester,
    allowed_profiles,
    default_for,
    named_server_limit,
    profiles_from_setting,
    profiles_setting,
    resolve_profile,
    resolve_user_options,
    validate_free_text,
)
from labfleet.spawn.profile_form import render_profile_form

PROFILES = [
    Profile(slug="small", display_name="Small", default=True),
    Profile(slug="gpu", display_name="GPU", gpus=1, allowed_groups=["ml"]),
    Profile(slug="big", display_name="Big", allowed_users=["Alice"]),
    Profile(slug="ops", display_name="Ops", admin_only=True),
    Profile(slug="team", display_name="Team", allowed_users=["dan"], allowed_groups=["t"]),
]
BOB = Requester.of("bob")
ALICE = Requester.of("alice")
ML = Requester.of("mia", groups=["ml"])
ADMIN = Requester.of("root1", admin=True)


def slugs(who: Requester) -> list[str]:
    return [p.slug for p in allowed_profiles(PROFILES, who)]


def test_allowed_profiles_by_user_group_and_admin() -> None:
    assert slugs(BOB) == ["small"]
    assert slugs(ALICE) == ["small", "big"]  # allow-list normalised ("Alice")
    assert slugs(ML) == ["small", "gpu"]
    assert slugs(ADMIN) == ["small", "gpu", "big", "ops", "team"]
    assert slugs(Requester.of("dan")) == ["small", "team"]
    assert slugs(Requester.of("x", groups=["t"])) == ["small", "team"]


@pytest.mark.parametrize(
    ("requested", "message"),
    [
        ("gpu", "not available"),
        ("ops", "admins only"),
        ("nope", "unknown profile"),
        ("small\n", "not a profile name"),
        ("SMALL", "not a profile name"),
        (["small"], "not a profile name"),
        (3, "not a profile name"),
        ("../x", "not a profile name"),
    ],
)
def test_refusals_have_reasons(requested: object, message: str) -> None:
    with pytest.raises(PolicyError, match=message) as info:
        resolve_profile(PROFILES, BOB, requested)
    assert info.value.status == 403


def test_default_and_fallback() -> None:
    assert resolve_profile(PROFILES, BOB, None).slug == "small"
    assert resolve_profile(PROFILES, BOB, "").slug == "small"
    only_gpu = [PROFILES[1], PROFILES[0].model_copy(update={"default": False})]
    assert default_for(only_gpu, BOB).slug == "small"
    with pytest.raises(PolicyError, match="no server profile"):
        default_for([PROFILES[1]], BOB)


def test_unknown_option_keys_are_refused() -> None:
    assert resolve_user_options(PROFILES, BOB, {"profile": "small"}).slug == "small"
    assert resolve_user_options(PROFILES, BOB, None).slug == "small"
    with pytest.raises(PolicyError, match="image"):
        resolve_user_options(PROFILES, BOB, {"profile": "small", "image": "evil/x"})
    with pytest.raises(PolicyError) as info:
        resolve_user_options(PROFILES, BOB, ["profile"])  # type: ignore[arg-type]
    assert info.value.status == 400


IMAGE = r"jupyter/[a-z0-9-]+:[0-9.]+"


@pytest.mark.parametrize(
    "value",
    ["jupyter/x:1.0\n", "evil.registry/x:1", "jupyter/x:1.0 ", "jupyter/x:1.0\x00", "x" * 300],
)
def test_free_text_needs_a_full_match(value: str) -> None:
    with pytest.raises(PolicyError):
        validate_free_text(value, IMAGE, "image")
    # The trap this guards against: re.match with '$' accepts a trailing newline.
    import re

    if value.endswith("\n"):
        assert re.match(IMAGE + "$", value) is not None


def test_free_text_accepts_a_full_match() -> None:
    assert validate_free_text("jupyter/scipy-notebook:4.0", IMAGE, "image")
    with pytest.raises(PolicyError):
        validate_free_text(None, IMAGE, "image")


def test_profiles_round_trip_through_settings() -> None:
    assert profiles_from_setting(profiles_setting(PROFILES)) == PROFILES


def test_form_escapes_everything() -> None:
    hostile = Profile(
        slug="x",
        display_name='"><script>alert(1)</script>',
        description="<img src=x onerror=alert(1)>",
        image="jupyter/x:1",
    )
    html = render_profile_form([PROFILES[0], hostile], selected="x")
    assert "<script>" not in html and "<img" not in html
    assert "&lt;script&gt;" in html and "&quot;&gt;" in html
    assert 'value="x" checked' in html
    assert 'value="small">' in html


def test_named_server_limits_by_user_and_group() -> None:
    groups = {"ml": 5, "students": 1, "staff": 0}
    users = {"Carol": 9}
    assert named_server_limit(BOB, 2, groups, users) == 2
    assert named_server_limit(Requester.of("s", ["students"]), 2, groups, users) == 1
    assert named_server_limit(Requester.of("m", ["students", "ml"]), 2, groups, users) == 5
    assert named_server_limit(Requester.of("t", ["ml", "staff"]), 2, groups, users) == 0
    assert named_server_limit(Requester.of("carol", ["ml"]), 2, groups, users) == 9
    assert named_server_limit(ADMIN, 2, groups, users) == 0


class _Group:
    def __init__(self, name: str) -> None:
        self.name = name


class _User:
    def __init__(self, name: str, groups: list[str], admin: bool = False) -> None:
        self.name = name
        self.groups = [_Group(group) for group in groups]
        self.admin = admin


class _Handler:
    def __init__(self, user: _User | None) -> None:
        self.current_user = user


def test_named_server_limit_hook_reads_the_requesting_user() -> None:
    hook = NamedServerLimit(3, {"ml": 10})
    assert hook(_Handler(_User("x", ["ml"]))) == 10
    assert hook(_Handler(_User("y", []))) == 3
    assert hook(_Handler(None)) == 3
