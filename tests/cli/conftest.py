"""Fixtures for CLI tests: the CLI as a subprocess, and a running platform.

The pointer to the running platform goes to a per-test file
(``LABFLEET_CURRENT_FILE``), so tests never touch ``/run/labfleet``.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.conftest import write_config
from tests.support.platform import Platform

PASSWORD = "correct horse battery staple"


def cli(
    *args: str, cwd: Path, env: dict[str, str], input: str | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "labfleet.cli.main", *args],
        cwd=cwd,
        env=env,
        input=input,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("LABFLEET_")}
    environ["LABFLEET_CURRENT_FILE"] = str(tmp_path / "current")
    return environ


@pytest.fixture
def running(tmp_path: Path, env, monkeypatch: pytest.MonkeyPatch) -> Iterator[Platform]:
    monkeypatch.setenv("LABFLEET_CURRENT_FILE", env["LABFLEET_CURRENT_FILE"])
    # isolation is not what these tests are about (pytest's tmp root is 0700)
    config = write_config(
        tmp_path / "labfleet.yaml", "culling: {enabled: false}\nlocal: {isolation: none}\n"
    )
    platform = Platform(data_dir=tmp_path / "data", config=config)
    result = cli(
        "users",
        "add",
        "dana",
        "--password-stdin",
        "--data-dir",
        str(platform.data_dir),
        cwd=tmp_path,
        env=env,
        input=PASSWORD + "\n",
    )
    assert result.returncode == 0, result.stderr
    platform.start()
    try:
        yield platform
    finally:
        platform.stop()
