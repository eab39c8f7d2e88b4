"""``labfleet reload`` applies a changed labfleet.yaml and keeps running kernels alive (issue 17).

A real platform, a real server and a real kernel: ``x = 1`` before the reload,
``print(x)`` in the same kernel after it. The hub that answers afterwards is a
new process and runs with the new config.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import httpx
import pytest

from tests.cli.conftest import PASSWORD, cli
from tests.support.client import HubUser, _execute
from tests.support.platform import Platform

pytestmark = pytest.mark.integration


def _kernel(server_url: str, token: str) -> str:
    resp = httpx.post(
        server_url + "api/kernels",
        json={"name": "python3"},
        headers={"Authorization": f"token {token}"},
        timeout=60,
    )
    resp.raise_for_status()
    kernel_id: str = resp.json()["id"]
    return kernel_id


def _run(server_url: str, token: str, kernel_id: str, code: str) -> str:
    ws_url = server_url.replace("http", "ws", 1) + f"api/kernels/{kernel_id}/channels"
    headers = {"Authorization": f"token {token}"}
    return asyncio.run(asyncio.wait_for(_execute(ws_url, headers, code), 90))


def test_reload_keeps_kernels_and_applies_the_new_config(
    tmp_path: Path,
    env: dict[str, str],
    running: Platform,
) -> None:
    dana = HubUser(running.url, "dana")
    try:
        dana.login(PASSWORD)
        dana.start_server().raise_for_status()
        dana.wait_ready()
        token = dana.new_token()
        kernel = _kernel(dana.server_url(), token)
        assert _run(dana.server_url(), token, kernel, "x = 1; print('set')").strip() == "set"
        hub_pid = (running.data_dir / "state" / "jupyterhub.pid").read_text().strip()

        assert running.config is not None
        running.config.write_text(
            running.config.read_text()
            + "profiles:\n"
            + "  - {slug: small, display_name: Small, default: true}\n"
            + "  - {slug: big, display_name: Big, memory: 1G}\n"
        )
        result = cli(
            "reload",
            "--data-dir",
            str(running.data_dir),
            "-c",
            str(running.config),
            cwd=tmp_path,
            env=env,
        )
        assert result.returncode == 0, result.stdout + result.stderr
        assert "the hub is back" in result.stdout
        assert "profiles" in result.stdout  # a change that reaches servers at their next start
        assert (running.data_dir / "state" / "jupyterhub.pid").read_text().strip() != hub_pid

        # the same kernel, still alive, still holding x
        assert _run(dana.server_url(), token, kernel, "print(x)").strip() == "1"
        assert dana.server_model().get("ready")
        # the hub's services came back with it (the dashboard answers with a login redirect)
        for _ in range(60):
            dashboard = httpx.get(f"{running.url}/services/dashboard/", timeout=10)
            if dashboard.status_code in (302, 303):
                break
            time.sleep(0.5)
        assert dashboard.status_code in (302, 303), dashboard.status_code
        status = cli("status", "--data-dir", str(running.data_dir), cwd=tmp_path, env=env)
        assert status.returncode == 0 and "dana" in status.stdout
    finally:
        dana.close()


def test_reload_refuses_a_bad_config_and_changes_nothing(
    tmp_path: Path,
    env: dict[str, str],
    running: Platform,
) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("profiles: [{slug: x, cpu: lots}]\n")
    hub_pid = (running.data_dir / "state" / "jupyterhub.pid").read_text().strip()
    result = cli(
        "reload", "--data-dir", str(running.data_dir), "-c", str(bad), cwd=tmp_path, env=env
    )
    assert result.returncode == 2
    assert "nothing was changed" in result.stderr
    assert (running.data_dir / "state" / "jupyterhub.pid").read_text().strip() == hub_pid


def test_reload_when_nothing_runs_exits_3(tmp_path: Path, env: dict[str, str]) -> None:
    result = cli("reload", "--data-dir", str(tmp_path / "none"), cwd=tmp_path, env=env)
    assert result.returncode == 3
