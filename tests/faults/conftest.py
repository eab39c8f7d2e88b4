"""A real platform whose data dir lives on its own small tmpfs, so a test can fill it,
make it read-only, or lock its database, and then give it back; and one on the fault
injector (``fault_fs``), whose writes can be made to fail while the hub runs.

Root only (mount); each mount is unmounted in teardown, after its platform stopped.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
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


@dataclass
class FaultDisk:
    """The data dir's file system is ``fault_fs`` over a real directory: flip its mode."""

    mount: Path
    control: Path

    def set(self, mode: str) -> None:
        """``rw``, ``ro``, ``full`` or ``eio``: from the next file-system call on."""
        self.control.write_text(mode + "\n")


@contextlib.contextmanager
def fault_fs() -> Iterator[FaultDisk]:
    """Mount the fault injector (its own process, stopped by pid and waited for)."""
    if os.geteuid() != 0:
        pytest.skip("mounting a FUSE file system here needs root")
    pytest.importorskip("mfusepy", reason="the fault injector needs mfusepy (the [test] extra)")
    if not Path("/dev/fuse").exists() or shutil.which("fusermount3") is None:
        pytest.skip("no /dev/fuse or fusermount3 on this machine")
    parent = Path(tempfile.mkdtemp(prefix="labfleet-faultfs-"))
    backing, mount, control = parent / "backing", parent / "mnt", parent / "mode"
    backing.mkdir()
    mount.mkdir()
    disk = FaultDisk(mount, control)
    disk.set("rw")
    log = open(parent / "fault_fs.log", "wb")  # noqa: SIM115 - closed below
    server = subprocess.Popen(
        [sys.executable, "-m", "tests.faults.fault_fs", str(backing), str(mount), str(control)],
        stdout=log,
        stderr=subprocess.STDOUT,
        cwd=Path(__file__).resolve().parents[2],
    )
    try:
        deadline = time.monotonic() + 30
        while not os.path.ismount(mount):
            if server.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(
                    f"fault_fs did not mount: {(parent / 'fault_fs.log').read_text()}"
                )
            time.sleep(0.05)
        yield disk
    finally:
        disk.set("rw")
        if os.path.ismount(mount):
            unmounted = subprocess.run(["fusermount3", "-u", str(mount)], check=False)
            if unmounted.returncode != 0:
                subprocess.run(["fusermount3", "-u", "-z", str(mount)], check=False)
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
        log.close()
        shutil.rmtree(parent, ignore_errors=True)


def start_platform(data: Path, home: Path) -> Platform:
    """``labfleet up`` in ``data``: members dana, erin, admin ada (password PASSWORD)."""
    config = home / "labfleet.yaml"
    # isolation and limits are not what these tests are about: no system accounts, and no
    # cgroups (another test session's end-of-run sweep may remove an empty one mid-spawn)
    config.write_text("culling: {enabled: false}\nlocal: {isolation: none, limits: none}\n")
    for name, admin in (("dana", ()), ("erin", ()), ("ada", ("--admin",))):
        added = labfleet(
            "users", "add", name, *admin, "--password-stdin", input=PASSWORD + "\n", data_dir=data
        )
        assert added.returncode == 0, added.stderr
    platform = Platform(data_dir=data, config=config, log_path=home / "up.log")
    platform.start(timeout=300)  # on FUSE, on a busy 2-core machine, a start is slow
    return platform


@contextlib.contextmanager
def current_file(home: Path) -> Iterator[None]:
    """This platform's ``current`` file, not the machine's (``labfleet status`` reads it)."""
    old = os.environ.get("LABFLEET_CURRENT_FILE")
    os.environ["LABFLEET_CURRENT_FILE"] = str(home / "current")
    try:
        yield
    finally:
        if old is None:
            os.environ.pop("LABFLEET_CURRENT_FILE", None)
        else:
            os.environ["LABFLEET_CURRENT_FILE"] = old


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
    with current_file(small_disk.mount.parent):
        platform = start_platform(small_disk.mount / "data", small_disk.mount.parent)
        try:
            yield platform
        finally:
            small_disk.remount("rw")
            small_disk.free()
            platform.stop()


@pytest.fixture(scope="module")
def fault_disk() -> Iterator[FaultDisk]:
    with fault_fs() as disk:
        yield disk


@pytest.fixture(scope="module")
def faulty_platform(fault_disk: FaultDisk) -> Iterator[Platform]:
    """``labfleet up`` with its whole data dir on the fault injector (same members)."""
    home = fault_disk.mount.parent
    with current_file(home):
        platform = start_platform(fault_disk.mount / "data", home)
        try:
            yield platform
        finally:
            fault_disk.set("rw")
            platform.stop()
