"""``labfleet envs`` from the command line: create, list, install, remove, and refusals.

Real pip against the package index, real venvs under /opt/labfleet/envs: a bad
name or spec is refused before anything is made, a package the index does not
have fails with pip's own reason and leaves nothing behind, and ``check``
knows which names exist.
"""

from __future__ import annotations

import contextlib
import io
import json
import subprocess
from pathlib import Path

import pytest

from labfleet.cli.main import main
from labfleet.envs import GENERATION_FILE, Store
from labfleet.envs.layout import platform_root
from tests.envs.conftest import FIRST_PACKAGE, SECOND_PACKAGE, needs_root

pytestmark = [needs_root]
MISSING = "labfleet-no-such-package-7f3a"


def envs(data_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """The real CLI, in this process (a new interpreter per call costs seconds on 2 cores)."""
    return cli("envs", *args, "--data-dir", str(data_dir))


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(list(args))
    return subprocess.CompletedProcess(list(args), code, out.getvalue(), err.getvalue())


def test_create_list_install_remove(data_dir: Path) -> None:
    made = envs(data_dir, "create", "sci", "--package", FIRST_PACKAGE)
    assert made.returncode == 0, made.stdout + made.stderr
    assert f"{FIRST_PACKAGE} " in made.stdout and "environment: sci" in made.stdout

    listed = envs(data_dir, "list")
    assert listed.returncode == 0, listed.stderr
    assert listed.stdout.startswith("sci\tgeneration 1\t")
    assert FIRST_PACKAGE in listed.stdout and "jupyterlab" in listed.stdout
    assert "note:" not in listed.stdout  # built on the server environment in use

    env = Store(data_dir).require("sci")
    assert (env.prefix / GENERATION_FILE).read_text() == "1\n"
    manifest = json.loads((env.prefix / "labfleet-env.json").read_text())
    assert manifest["requested"] == [FIRST_PACKAGE] and FIRST_PACKAGE in manifest["packages"]
    # layered on the server stack only: Debian's system site is not visible (no leak)
    probe = subprocess.run(
        [str(env.prefix / "bin" / "python"), "-c", "import sys, jupyterhub; print(sys.path)"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert "dist-packages" not in probe.stdout and str(env.prefix) in probe.stdout

    added = envs(data_dir, "install", "sci", SECOND_PACKAGE)
    assert added.returncode == 0, added.stdout + added.stderr
    after = Store(data_dir).require("sci")
    assert after.generation == 2 and (after.prefix / GENERATION_FILE).read_text() == "2\n"
    assert not env.prefix.exists()  # nothing ran from generation 1: cleaned up
    assert f"{FIRST_PACKAGE} " in added.stdout and f"{SECOND_PACKAGE} " in added.stdout

    # an install that fails keeps the environment exactly as it was
    failed = envs(data_dir, "install", "sci", MISSING)
    assert failed.returncode == 1, failed.stdout + failed.stderr
    assert "No matching distribution found" in failed.stderr
    kept = Store(data_dir).require("sci")
    assert kept.prefix == after.prefix and kept.manifest == after.manifest
    assert sorted(p.name for p in kept.folder.iterdir()) == ["current", "gen-2"]

    # after an upgrade (a new server environment) list says how to rebuild
    manifest_path = kept.prefix / "labfleet-env.json"
    manifest = json.loads(manifest_path.read_text())
    manifest_path.write_text(json.dumps({**manifest, "base": "/opt/labfleet/server-env-old"}))
    assert "built on an older server environment" in envs(data_dir, "list").stdout

    removed = envs(data_dir, "remove", "sci")
    assert removed.returncode == 0, removed.stderr
    assert "removed environment sci" in removed.stdout
    assert "no environments" in envs(data_dir, "list").stdout
    assert not (platform_root(data_dir) / "sci").exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("install", "ghost", "tabulate"), "no environment 'ghost' on this platform"),
        (("remove", "ghost"), "no environment 'ghost' on this platform"),
        (("create", "Bad_Name"), "is not an environment name"),
        (("create", "sci", "--package", "tabulate==="), "is not a package spec"),
        (("create", "sci", "--package=--index-url=http://x"), "is not a package spec"),
        (("create", "sci", "--package", "x @ https://example.invalid/x.whl"), "index only"),
    ],
)
def test_bad_input_is_refused_and_nothing_is_made(
    data_dir: Path, args: tuple[str, ...], message: str
) -> None:
    result = envs(data_dir, *args)
    assert result.returncode == 2, result.stdout + result.stderr
    assert message in result.stderr
    assert "Traceback" not in result.stderr
    assert Store(data_dir).names() == []
    assert not (platform_root(data_dir) / "sci").exists()


def test_a_package_the_index_lacks_fails_with_pips_reason_and_leaves_nothing(
    data_dir: Path,
) -> None:
    result = envs(data_dir, "create", "sci", "--package", FIRST_PACKAGE, "--package", MISSING)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "could not create environment 'sci'" in result.stderr
    assert "No matching distribution found" in result.stderr
    assert Store(data_dir).names() == []
    assert not (platform_root(data_dir) / "sci").exists()


def test_check_knows_which_environments_exist(
    data_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = tmp_path / "labfleet.yaml"
    config.write_text(
        "profiles:\n  - {slug: sci, display_name: Science, environment: sci, default: true}\n"
    )
    monkeypatch.setenv("LABFLEET_DATA_DIR", str(data_dir))

    def check() -> subprocess.CompletedProcess[str]:
        return cli("check", str(config))

    refused = check()
    assert refused.returncode == 2, refused.stdout + refused.stderr
    assert "no managed environment 'sci'" in refused.stderr
    assert "labfleet envs create sci" in refused.stderr
    assert envs(data_dir, "create", "sci").returncode == 0
    accepted = check()
    assert accepted.returncode == 0, accepted.stderr
