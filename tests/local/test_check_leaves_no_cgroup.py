"""``labfleet check`` tries the cgroup backend for real, and leaves no group behind."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

import pytest

from labfleet.spawn.limits.platform import parent_dirs
from tests.support.platform import labfleet


@pytest.mark.root
def test_check_removes_the_parent_group_it_made(tmp_path: Path) -> None:
    if os.geteuid() != 0:
        pytest.skip("needs root to create control groups")
    for path in parent_dirs("labfleet"):  # an empty leftover from earlier runs
        with contextlib.suppress(OSError):
            path.rmdir()
    if parent_dirs("labfleet"):
        pytest.skip("a 'labfleet' control group is in use on this machine")
    config = tmp_path / "labfleet.yaml"
    config.write_text("local: {limits: auto}\n")
    result = labfleet("check", str(config))
    assert result.returncode in (0, 1), result.stderr
    assert parent_dirs("labfleet") == [], "labfleet check left its probe's parent group"
