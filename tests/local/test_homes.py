"""Homes (0700, owned by the user), shared folders, and "can an unprivileged user reach it"."""

from __future__ import annotations

import os
import stat
import tempfile
from pathlib import Path

import pytest

from labfleet.spawn.homes import (
    Owner,
    interpreter_of,
    link_shared_folders,
    prepare_home,
    prepare_shared_folders,
    unreachable_reason,
)
from tests.local.conftest import needs_root

NOBODY = Owner(65534, 65534)


def test_home_is_private_and_created_once(tmp_path: Path) -> None:
    home = prepare_home(tmp_path / "homes" / "alice", None)
    (home / "notes.txt").write_text("mine")
    home.chmod(0o755)  # somebody loosened it: the next start tightens it again
    prepare_home(home, None)
    assert stat.S_IMODE(home.stat().st_mode) == 0o700
    assert (home / "notes.txt").read_text() == "mine"


def test_home_that_is_not_a_directory_is_refused(tmp_path: Path) -> None:
    (tmp_path / "alice").symlink_to("/etc")
    with pytest.raises(OSError, match="not a directory"):
        prepare_home(tmp_path / "alice", None)


def test_shared_links_never_replace_what_the_user_made(tmp_path: Path) -> None:
    home = prepare_home(tmp_path / "home", None)
    data, scratch = tmp_path / "shared" / "data", tmp_path / "shared" / "scratch"
    prepare_shared_folders(data, scratch, as_root=False)
    (home / "data").write_text("my own file called data")
    notes = link_shared_folders(home, {"data": data, "scratch": scratch}, None)
    assert (home / "data").read_text() == "my own file called data"
    assert notes and "left as it is" in notes[0]
    assert os.readlink(home / "scratch") == str(scratch)
    assert link_shared_folders(home, {"scratch": scratch}, None) == []  # idempotent


def test_unreachable_reason_names_the_closed_directory(shared_tmp: Path) -> None:
    tmp_path = Path(tempfile.mkdtemp(dir=shared_tmp))  # pytest's tmp_path is itself 0700
    closed = tmp_path / "closed"
    closed.mkdir(mode=0o700)
    target = closed / "python"
    target.write_text("#!/bin/sh\n")
    target.chmod(0o755)
    tmp_path.chmod(0o755)
    open_dir = tmp_path / "open"
    open_dir.mkdir(mode=0o755)
    (open_dir / "python").symlink_to(target)
    for path in (target, open_dir / "python"):
        reason = unreachable_reason(path)
        assert reason is not None and str(closed) in reason and "0700" in reason
    closed.chmod(0o755)
    assert unreachable_reason(open_dir / "python") is None
    target.chmod(0o700)
    assert "not readable" in (unreachable_reason(open_dir / "python") or "")


def test_interpreter_of_script(tmp_path: Path) -> None:
    script = tmp_path / "tool"
    script.write_text("#!/opt/env/bin/python -u\nprint(1)\n")
    assert interpreter_of(script) == Path("/opt/env/bin/python")
    script.write_bytes(b"\x7fELF....")
    assert interpreter_of(script) is None


@pytest.mark.root
@needs_root
def test_ownership_is_handed_over_without_following_symlinks(tmp_path: Path) -> None:
    home = tmp_path / "home"
    (home / "sub").mkdir(parents=True)
    (home / "sub" / "file").write_text("x")
    victim = tmp_path / "victim"
    victim.write_text("root's file")
    (home / "link-to-victim").symlink_to(victim)
    prepare_home(home, NOBODY)
    for path in (home, home / "sub", home / "sub" / "file"):
        assert (path.lstat().st_uid, path.lstat().st_gid) == (NOBODY.uid, NOBODY.gid)
    assert (home / "link-to-victim").lstat().st_uid == NOBODY.uid
    assert victim.stat().st_uid == 0, "chown must not follow a symlink out of the home"


@pytest.mark.root
@needs_root
def test_shared_folders_as_root(tmp_path: Path) -> None:
    data, scratch = tmp_path / "data", tmp_path / "scratch"
    prepare_shared_folders(data, scratch, as_root=True)
    assert stat.S_IMODE(data.stat().st_mode) == 0o755 and data.stat().st_uid == 0
    assert stat.S_IMODE(scratch.stat().st_mode) == 0o1777
    home = prepare_home(tmp_path / "home", NOBODY)
    link_shared_folders(home, {"data": data}, NOBODY)
    assert (home / "data").lstat().st_uid == NOBODY.uid  # the user may remove the link
