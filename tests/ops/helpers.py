"""Helpers shared by the ops tests: runbook steps are CLI calls, as an operator types them."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import httpx

from tests.integration.test_embedded_flow import PASSWORD, add_user

__all__ = ["PASSWORD", "add_user", "cli", "hub_api", "supervisor_token"]


def cli(
    *args: str, env: dict[str, str] | None = None, timeout: float = 180
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "labfleet.cli.main", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
    )


def supervisor_token(data_dir: Path) -> str:
    return (data_dir / "secrets" / "supervisor_token").read_text().strip()


def hub_api(url: str, token: str, path: str) -> httpx.Response:
    return httpx.get(
        f"{url}/hub/api{path}", headers={"Authorization": f"token {token}"}, timeout=30
    )
