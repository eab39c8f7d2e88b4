"""The pure parts of managed environments: names, specs, manifests, the form's line."""

from __future__ import annotations

from pathlib import Path

import pytest

from labfleet.config.profiles import Machine, Profile, is_environment_name, machine_problems
from labfleet.envs.layout import (
    EnvInputError,
    Manifest,
    check_spec,
    contents_line,
    generation_of,
    merge_specs,
    platform_tag,
)
from labfleet.spawn.accounts import platform_tag as accounts_platform_tag
from labfleet.spawn.profile_form import render_profile_form


def test_names_and_paths_are_told_apart() -> None:
    assert is_environment_name("sci") and is_environment_name("py-311")
    assert not is_environment_name("/opt/conda/envs/sci")
    assert not is_environment_name("Sci") and not is_environment_name("envs/sci")


@pytest.mark.parametrize("spec", ["", "-r", "--index-url=x", "tabulate===", "x @ file:///tmp/x"])
def test_specs_that_are_not_plain_index_requirements_are_refused(spec: str) -> None:
    with pytest.raises(EnvInputError):
        check_spec(spec)


def test_a_package_named_again_replaces_its_spec() -> None:
    assert merge_specs(["tabulate", "six>=1"], ["Tabulate==0.9.0", "termcolor"]) == [
        "Tabulate==0.9.0",
        "six>=1",
        "termcolor",
    ]


def test_generation_numbers_and_the_platform_tag_match_the_accounts() -> None:
    assert generation_of(Path("/x/gen-12")) == 12
    assert generation_of(Path("/x/current")) is None
    assert platform_tag(Path("/srv/lab")) == accounts_platform_tag(Path("/srv/lab"))


def test_the_form_shows_what_an_environment_holds_escaped() -> None:
    manifest = Manifest("sci", 2, "", "3.11", "/b", ["tabulate"], {"tabulate": "0.9.0"}, {})
    line = "environment sci: " + contents_line(manifest)
    assert line == "environment sci: tabulate 0.9.0 (on Python 3.11)"
    profiles = [
        Profile(slug="plain", display_name="Plain"),
        Profile(slug="sci", display_name="Science", environment="sci"),
    ]
    html = render_profile_form(profiles, "plain", {"sci": line + " <b>"})
    assert "tabulate 0.9.0 (on Python 3.11) &lt;b&gt;" in html
    assert html.count("labfleet-environment") == 1


def test_check_refuses_an_unknown_environment_name() -> None:
    profiles = [Profile(slug="sci", display_name="Science", environment="sci")]
    errors, _ = machine_problems(profiles, Machine(4, 2**34, 0, frozenset({"geo"})))
    assert errors == [
        "profiles[0] (sci).environment: no managed environment 'sci' on this platform "
        "(have: geo); create it with: labfleet envs create sci"
    ]
    assert machine_problems(profiles, Machine(4, 2**34, 0, frozenset({"sci"})))[0] == []
