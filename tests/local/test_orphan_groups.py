"""The orphan sweep removes the empty control groups of servers the hub does not know."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from labfleet.spawn.limits.base import Limits
from labfleet.spawn.limits.detect import probe
from labfleet.spawn.limits.platform import parent_dirs, remove_parent
from labfleet.up.orphans import sweep


@pytest.mark.root
def test_sweep_removes_empty_groups_the_hub_does_not_know(tmp_path: Path) -> None:
    """A server killed with its hub (or a hub killed between making a group and
    launching into it) leaves an empty group that no later stop removes: the
    sweep used to look only at groups with processes in them, so such groups
    piled up in every hierarchy for good."""
    parent = f"labfleet-test-orphans-{os.getpid()}"
    found = probe("auto", parent)
    if found.backend is None:
        pytest.skip(f"no cgroup backend: {found.reason}")
    backend = found.backend
    sleeper = None
    try:
        for slug in ("ghost", "kept", "busy"):
            backend.create(slug, Limits())
        # "busy": an unknown server still running; "kept": known to the hub, empty
        sleeper = subprocess.Popen(
            ["sleep", "60"], preexec_fn=backend.join_hook("busy"), start_new_session=True
        )
        assert backend.pids("busy") == [sleeper.pid]
        stopped = sweep(tmp_path, parent_dirs(parent), lambda: {"kept"}, grace=5)
        assert sleeper.wait(timeout=30) is not None
        assert stopped == ["busy"]
        groups = [group for path in parent_dirs(parent) for group in path.iterdir()]
        left = {group.name for group in groups if group.is_dir()}
        assert left == {"kept"}, "the sweep left empty groups of servers the hub does not know"
    finally:
        if sleeper is not None and sleeper.poll() is None:
            sleeper.kill()
            sleeper.wait()
        remove_parent(parent)
    assert parent_dirs(parent) == []
