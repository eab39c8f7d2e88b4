"""Fixtures that run the real platform: `labfleet up` with real JupyterHub and servers."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.platform import TEST_PROXY, Platform, write_config

__all__ = ["TEST_PROXY", "write_config"]  # re-exported: many test modules import them from here


@pytest.fixture
def make_platform(tmp_path: Path) -> Iterator[object]:
    started: list[Platform] = []

    def make(config_text: str | None = None, data_dir: Path | None = None) -> Platform:
        config = write_config(tmp_path / f"labfleet-{len(started)}.yaml", config_text or "")
        platform = Platform(data_dir=data_dir or tmp_path / "data", config=config)
        started.append(platform)
        return platform

    yield make
    for platform in started:
        platform.stop()


@pytest.fixture
def open_data_dir() -> Iterator[Path]:
    """A data dir whose parents other users can traverse (pytest's tmp root is
    0700), so servers isolated as their own accounts can reach their homes."""
    import shutil
    import tempfile

    parent = Path(tempfile.mkdtemp(prefix="labfleet-crash-"))
    parent.chmod(0o711)
    yield parent / "data"
    shutil.rmtree(parent, ignore_errors=True)
