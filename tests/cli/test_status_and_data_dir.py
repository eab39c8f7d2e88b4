"""``labfleet status`` exit codes and how every command finds its data directory (issue 17).

Real processes throughout: the CLI as a subprocess, a real ``labfleet up``.
The pointer to the running platform goes to a per-test file
(``LABFLEET_CURRENT_FILE``), so tests never touch ``/run/labfleet``.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.cli.conftest import PASSWORD, cli
from tests.support.client import HubUser


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
        # the hub's own log is in the data dir, for `labfleet logs hub`
        logs = cli("logs", "hub", cwd=elsewhere, env=env)
        assert logs.returncode == 0 and "JupyterHub" in logs.stdout, logs.stderr
    finally:
        dana.close()

    running.stop()
    stopped = cli("status", "--data-dir", str(running.data_dir), cwd=tmp_path, env=env)
    assert stopped.returncode == 3, stopped.stdout
    assert "NOT running" in stopped.stdout
