"""Helpers for the one-machine platform tests: a reachable data dir, users, their accounts."""

from __future__ import annotations

import subprocess
import tempfile
import uuid
from pathlib import Path

from labfleet.naming import system_account
from labfleet.spawn.accounts import purge_local_user
from tests.integration.conftest import write_config
from tests.support.client import HubUser
from tests.support.platform import Platform, labfleet

PASSWORD = "correct horse battery staple"


def new_platform(shared_tmp: Path, config_text: str) -> Platform:
    """A platform whose data dir system accounts can traverse (its parent is 0711, like /srv)."""
    base = Path(tempfile.mkdtemp(dir=shared_tmp))
    base.chmod(0o711)
    config = write_config(base / "labfleet.yaml", config_text)
    return Platform(data_dir=base / "data", config=config)


def unique_names(*prefixes: str) -> list[str]:
    return [f"{prefix}-{uuid.uuid4().hex[:4]}" for prefix in prefixes]


def add_and_login(platform: Platform, name: str) -> HubUser:
    added = labfleet(
        "users", "add", name, "--password-stdin", input=PASSWORD + "\n", data_dir=platform.data_dir
    )
    assert added.returncode == 0, added.stderr
    user = HubUser(platform.url, name)
    assert user.login(PASSWORD).status_code == 200
    return user


def remove_accounts(names: list[str], data_dir: Path | None = None) -> None:
    """Delete the system accounts labfleet made for ``names`` (after their servers stopped).

    With ``data_dir``: that platform's scoped accounts and control groups (``purge_local_user``).
    """
    for name in names:
        if data_dir is not None:
            purge_local_user(data_dir, name)
        subprocess.run(["userdel", "--", system_account(name)], capture_output=True, check=False)
