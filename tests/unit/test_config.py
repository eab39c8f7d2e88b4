"""Config validation: good files load, typos and wrong types name the key path (issue 2)."""

from __future__ import annotations

import pytest

from labfleet.config.load import ConfigError, load_config, parse_text
from labfleet.config.model import FleetConfig
from labfleet.config.starter import STARTER_CONFIG


def problems(text: str) -> list[str]:
    with pytest.raises(ConfigError) as info:
        parse_text(text, "t.yaml")
    return [str(p) for p in info.value.problems]


def test_empty_file_is_the_embedded_default() -> None:
    assert parse_text("") == FleetConfig()
    assert load_config(None).auth.kind == "password"


def test_starter_config_is_valid_and_commented() -> None:
    config = parse_text(STARTER_CONFIG)
    assert [p.slug for p in config.profiles] == ["default", "large"]
    assert STARTER_CONFIG.count("#") > 10


def test_size_typo_names_path_value_and_hint() -> None:
    text = "profiles:\n- {slug: a, display_name: A}\n- {slug: b, display_name: B, memory: 4 G}\n"
    (msg,) = problems(text)
    assert msg == "profiles[1].memory: '4 G' is not a size; did you mean '4G'? (line 3)"


def test_unknown_key_suggests_the_close_one() -> None:
    (msg,) = problems("culling:\n  timout: 1h\n")
    assert msg.startswith("culling.timout: unknown key; did you mean 'timeout'?")


def test_unknown_top_level_key_lists_known_ones() -> None:
    (msg,) = problems("zzz: 1\n")
    assert "zzz: unknown key" in msg and "profiles" in msg


def test_wrong_literal_hint() -> None:
    (msg,) = problems("proxy: {kind: chpp}")
    assert "proxy.kind" in msg and "did you mean 'chp'" in msg


def test_several_problems_reported_at_once() -> None:
    found = problems("culling: {timeout: soon}\nservers: {start_timeout: -1}\n")
    assert len(found) == 2


@pytest.mark.parametrize(
    "text",
    [
        "profiles: []",
        "profiles:\n- {slug: a, display_name: A}\n- {slug: a, display_name: B}",
        "profiles:\n- {slug: a, display_name: A, default: true}\n"
        "- {slug: b, display_name: B, default: true}",
        "profiles:\n- {slug: 'Bad Slug', display_name: A}",
        'profiles:\n- {slug: a, display_name: A, image: "x:y\\n"}',
        "hub: {base_url: 'no-slash'}",
        "hub: {extra_config: {'not a class': {}}}",
        "culling: {timeout: 0}",
        "[1, 2]",
        "a: [unclosed",
    ],
)
def test_invalid_configs(text: str) -> None:
    assert problems(text)


def test_yaml_syntax_error_has_a_line() -> None:
    (msg,) = problems("hub:\n  base_url: /\n   bad: indent\n")
    assert "not valid YAML" in msg and "line" in msg


def test_config_is_frozen() -> None:
    config = FleetConfig()
    with pytest.raises(Exception, match="frozen"):
        config.name = "x"  # type: ignore[misc]


def test_missing_file(tmp_path) -> None:
    with pytest.raises(ConfigError, match="file not found"):
        load_config(tmp_path / "nope.yaml")
