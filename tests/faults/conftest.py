"""A real platform whose data dir lives on its own small tmpfs, so a test can fill it,
make it read-only, or lock its database, and then give it back.

Root only (mount); the tmpfs is unmounted in teardown, after the platform stopped.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import sqlite3
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.cli.conftest import PASSWORD
from tests.support.platform import Platform, labfleet

SIZE = "64m"


@dataclass
class SmallDisk:
    """A tmpfs mount the test owns: fill it, free it, remount it read-only or writable."""

    mount: Path

    @property
    def filler(self) -> Path:
        return self.mount / "filler"

    def fill(self) -> None:
        """Write until the kernel says ENOSPC, down to the last page."""
        with open(self.filler, "ab", buffering=0) as out:
            for chunk in (1 << 20, 4096, 512, 1):
                with contextlib.suppress(OSError):
                    while True:
                        out.write(b"\0" * chunk)

    def free(self) -> None:
        self.filler.unlink(missing_ok=True)

    def remount(self, mode: str) -> None:
        subprocess.run(["mount", "-o", f"remount,{mode}", str(self.mount)], check=True)


def integrity(db: Path) -> str:
    with contextlib.closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True)) as conn:
        return str(conn.execute("PRAGMA integrity_check").fetchone()[0])


@contextlib.contextmanager
def small_tmpfs() -> Iterator[SmallDisk]:
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    parent = Path(tempfile.mkdtemp(prefix="labfleet-faults-"))
    mount = parent / "mnt"
    mount.mkdir()
    subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={SIZE},mode=0711", "tmpfs", str(mount)], check=True
    )
    try:
        yield SmallDisk(mount)
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)
        shutil.rmtree(parent, ignore_errors=True)


@pytest.fixture(scope="module")
def small_disk() -> Iterator[SmallDisk]:
    """A tmpfs for the module's platform."""
    with small_tmpfs() as disk:
        yield disk


@pytest.fixture
def idle_disk() -> Iterator[SmallDisk]:
    """A tmpfs with nothing running on it (a read-only remount needs no open writers)."""
    with small_tmpfs() as disk:
        yield disk


@pytest.fixture(scope="module")
def platform(small_disk: SmallDisk) -> Iterator[Platform]:
    """``labfleet up`` on the small disk: members dana, erin, admin ada (password PASSWORD)."""
    old = os.environ.get("LABFLEET_CURRENT_FILE")
    os.environ["LABFLEET_CURRENT_FILE"] = str(small_disk.mount.parent / "current")
    config = small_disk.mount.parent / "labfleet.yaml"
    # isolation and limits are not what these tests are about: no system accounts, and no
    # cgroups (another test session's end-of-run sweep may remove an empty one mid-spawn)
    config.write_text("culling: {enabled: false}\nlocal: {isolation: none, limits: none}\n")
    data = small_disk.mount / "data"
    for name, admin in (("dana", ()), ("erin", ()), ("ada", ("--admin",))):
        added = labfleet(
            "users", "add", name, *admin, "--password-stdin", input=PASSWORD + "\n", data_dir=data
        )
        assert added.returncode == 0, added.stderr
    platform = Platform(data_dir=data, config=config, log_path=small_disk.mount.parent / "up.log")
    platform.start()
    try:
        yield platform
    finally:
        small_disk.remount("rw")
        small_disk.free()
        platform.stop()
        if old is None:
            os.environ.pop("LABFLEET_CURRENT_FILE", None)
        else:
            os.environ["LABFLEET_CURRENT_FILE"] = old
