"""``labfleet status`` exit codes and how every command finds its data directory (issue 17).

Real processes throughout: the CLI as a subprocess, a real ``labfleet up``.
The pointer to the running platform goes to a per-test file
(``LABFLEET_CURRENT_FILE``), so tests never touch ``/run/labfleet``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.conftest import write_config
from tests.support.client import HubUser
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


def test_status_of_a_directory_where_nothing_runs_exits_3(tmp_path: Path, env) -> None:
    result = cli("status", "--data-dir", str(tmp_path / "nothing"), cwd=tmp_path, env=env)
    assert result.returncode == 3, result.stdout + result.stderr
    assert "NOT running" in result.stdout
    assert not (tmp_path / "nothing").exists(), "status must never create a data directory"
    as_json = cli("status", "--json", "--data-dir", str(tmp_path / "x"), cwd=tmp_path, env=env)
    assert as_json.returncode == 3
    assert json.loads(as_json.stdout)["running"] is False


def test_users_add_refuses_to_create_an_implicit_data_dir(tmp_path: Path, env) -> None:
    elsewhere = tmp_path / "some-other-dir"
    elsewhere.mkdir()
    result = cli(
        "users", "add", "bob", "--password-stdin", cwd=elsewhere, env=env, input=PASSWORD + "\n"
    )
    assert result.returncode == 2, result.stdout + result.stderr
    assert "would create a new, empty one" in result.stderr
    assert "--init" in result.stderr
    assert not (elsewhere / "labfleet-data").exists()

    made = cli(
        "users",
        "add",
        "bob",
        "--password-stdin",
        "--init",
        cwd=elsewhere,
        env=env,
        input=PASSWORD + "\n",
    )
    assert made.returncode == 0, made.stderr
    assert (elsewhere / "labfleet-data" / "accounts.sqlite").exists()


def test_data_dir_from_environment_variable(tmp_path: Path, env) -> None:
    target = tmp_path / "from-env"
    env["LABFLEET_DATA_DIR"] = str(target)
    result = cli(
        "users", "add", "carol", "--password-stdin", cwd=tmp_path, env=env, input=PASSWORD + "\n"
    )
    assert result.returncode == 0, result.stderr
    assert (target / "accounts.sqlite").exists()
    assert not (tmp_path / "labfleet-data").exists()


@pytest.fixture
def running(tmp_path: Path, env, monkeypatch: pytest.MonkeyPatch) -> Iterator[Platform]:
    monkeypatch.setenv("LABFLEET_CURRENT_FILE", env["LABFLEET_CURRENT_FILE"])
    config = write_config(tmp_path / "labfleet.yaml", "culling: {enabled: false}\n")
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


@pytest.mark.integration
def test_status_of_the_running_platform_from_anywhere(tmp_path: Path, env, running) -> None:
    dana = HubUser(running.url, "dana")
    try:
        dana.login(PASSWORD)
        dana.start_server().raise_for_status()
        dana.wait_ready()

        explicit = cli("status", "--data-dir", str(running.data_dir), cwd=tmp_path, env=env)
        assert explicit.returncode == 0, explicit.stdout + explicit.stderr
        assert "running since" in explicit.stdout
        assert f":{running.port}/" in explicit.stdout
        assert "dana" in explicit.stdout

        # from another directory, nothing named: the supervisor's record finds it
        elsewhere = tmp_path / "elsewhere"
        elsewhere.mkdir()
        found = cli("status", "--json", cwd=elsewhere, env=env)
        assert found.returncode == 0, found.stdout + found.stderr
        data = json.loads(found.stdout)
        assert data["running"] is True
        assert Path(data["data_dir"]) == running.data_dir.resolve()
        assert [s["user"] for s in data["servers"]] == ["dana"]
        # and a users command run there goes to the running platform, not a new ./labfleet-data
        added = cli(
            "users", "add", "eve", "--password-stdin", cwd=elsewhere, env=env, input=PASSWORD + "\n"
        )
        assert added.returncode == 0, added.stderr
        assert not (elsewhere / "labfleet-data").exists()
    finally:
        dana.close()

    running.stop()
    stopped = cli("status", "--data-dir", str(running.data_dir), cwd=tmp_path, env=env)
    assert stopped.returncode == 3, stopped.stdout
    assert "NOT running" in stopped.stdout
