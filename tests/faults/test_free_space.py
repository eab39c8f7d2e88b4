"""The free-space threshold (``local.min_free_space``): pure words, and a real statvfs."""

from __future__ import annotations

from pathlib import Path

import pytest

from labfleet.config.load import ConfigError
from labfleet.config.model import FleetConfig
from labfleet.hub.free_space import Space, data_dir_space, free_space_warning

GIB = 2**30


def test_warns_only_below_the_threshold() -> None:
    data = Path("/srv/lab")
    assert free_space_warning(data, Space(free=2 * GIB, total=10 * GIB), GIB) is None
    low = free_space_warning(data, Space(free=300 * 2**20, total=10 * GIB), GIB)
    assert low is not None
    assert "300.0 MiB free" in low and "/srv/lab" in low and "local.min_free_space" in low
    assert free_space_warning(data, Space(free=0, total=GIB), 0) is None  # 0 switches it off
    assert free_space_warning(data, None, GIB) is None  # unknown: say nothing rather than guess


def test_the_threshold_is_a_size_with_a_default_of_one_gib() -> None:
    assert FleetConfig().local.min_free_space == GIB
    assert FleetConfig.model_validate({"local": {"min_free_space": "5Gi"}}).local.min_free_space
    with pytest.raises((ValueError, ConfigError)):
        FleetConfig.model_validate({"local": {"min_free_space": "lots"}})


def test_space_of_a_directory_not_made_yet_is_its_disks(tmp_path: Path) -> None:
    space = data_dir_space(tmp_path / "not" / "yet")
    assert space is not None and 0 < space.free <= space.total
