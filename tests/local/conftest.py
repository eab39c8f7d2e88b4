"""Fixtures for one-machine isolation tests: world-usable Python, world-traversable data dirs.

Servers of isolated users run as unprivileged system accounts, so the Python
environment and the data directory must be reachable by them. Development
machines often keep the interpreter under ``/root`` (mode 0700) and pytest's
``tmp_path`` under ``/tmp/pytest-of-root`` (0700); these fixtures build what
an operator would install: an environment and a data directory that every
account can read.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from labfleet.spawn.homes import command_unusable_reason

IS_ROOT = os.geteuid() == 0
needs_root = pytest.mark.skipif(
    not IS_ROOT, reason="needs root: creates system accounts and control groups (CI runs as root)"
)


def world_usable_environment(base: Path) -> Path:
    """A Python environment prefix that unprivileged accounts can run.

    Our own ``sys.prefix`` when it is already usable; otherwise a venv made from
    a system interpreter that loads our packages through a ``.pth`` file.
    """
    ours = Path(sys.prefix)
    if command_unusable_reason(ours / "bin" / "jupyterhub-singleuser") is None:
        return ours
    version = f"python{sys.version_info.major}.{sys.version_info.minor}"
    system_python = shutil.which(version, path="/usr/local/bin:/usr/bin:/bin")
    if system_python is None or command_unusable_reason(Path(system_python)):
        pytest.skip(f"no {version} usable by unprivileged users to build a user environment")
    env = base / "userenv"
    subprocess.run([system_python, "-m", "venv", "--without-pip", str(env)], check=True)
    site_packages = Path(sysconfig.get_paths()["purelib"])
    pth = env / "lib" / version / "site-packages" / "labfleet-tests.pth"
    pth.write_text(f"import site; site.addsitedir({str(site_packages)!r})\n")
    script = env / "bin" / "jupyterhub-singleuser"
    script.write_text(
        f"#!{env / 'bin' / 'python'}\nimport sys\nfrom jupyterhub.singleuser import main\n"
        "sys.exit(main())\n"
    )
    script.chmod(0o755)
    return env


@pytest.fixture(scope="session")
def shared_tmp() -> Iterator[Path]:
    """A temporary directory every account can traverse (0711), removed at the end."""
    path = Path(tempfile.mkdtemp(prefix="labfleet-local-", dir="/tmp"))
    path.chmod(0o711)
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="session")
def user_environment(shared_tmp: Path) -> Path:
    env_base = shared_tmp / "envs"
    env_base.mkdir(mode=0o755)
    return world_usable_environment(env_base)
