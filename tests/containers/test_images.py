"""The hub and user images build from a Debian base and run what they promise, as non-root."""

from __future__ import annotations

import subprocess

import pytest

pytestmark = pytest.mark.timeout(1800)


def _in(image: str, env: dict[str, str], script: str) -> str:
    result = subprocess.run(
        ["podman", "run", "--rm", image, "sh", "-c", script],
        env=env,
        text=True,
        capture_output=True,
        check=False,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_hub_image_runs_labfleet_and_jupyterhub_as_non_root(
    images: dict[str, str], podman_env: dict[str, str]
) -> None:
    script = "id -u; labfleet --version 2>&1; jupyterhub --version 2>&1; pg_dump --version 2>&1"
    out = _in(images["hub"], podman_env, script)
    uid, labfleet, jupyterhub, pg_dump = out.split("\n")[:4]
    assert uid != "0"
    assert labfleet.startswith("labfleet ")
    assert jupyterhub.startswith("6.")
    # a PostgreSQL hub's upgrade-db init container backs up with pg_dump first (issue 15)
    assert pg_dump.startswith("pg_dump (PostgreSQL)"), pg_dump


def test_user_image_runs_singleuser_as_non_root(
    images: dict[str, str], podman_env: dict[str, str]
) -> None:
    out = _in(images["user"], podman_env, "id -u; jupyterhub-singleuser --version 2>&1")
    uid, version = out.split("\n")[:2]
    assert uid != "0"
    assert version.startswith("6.")
