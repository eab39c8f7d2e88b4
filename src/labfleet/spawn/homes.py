"""Home directories, shared folders, and whether a system user can reach a path.

Everything here runs as root when users are isolated, inside directories the
users can write to, so it never follows a symlink it did not make: ownership
is changed with ``lchown``/``fwalk`` and links are only created where nothing
exists yet.
"""

from __future__ import annotations

import contextlib
import os
import stat
from dataclasses import dataclass
from pathlib import Path

HOME_MODE = 0o700
DATA_MODE = 0o755  # read-only for users: owned by root
SCRATCH_MODE = 0o1777  # everyone writes, only owners delete (sticky, like /tmp)


@dataclass(frozen=True)
class Owner:
    uid: int
    gid: int


def prepare_home(home: Path, owner: Owner | None) -> Path:
    """Create ``home`` (0700) and make ``owner`` own it.

    If it was created earlier for another uid (labfleet ran without isolation,
    or the account was recreated), everything inside is handed over too.
    """
    home.parent.mkdir(parents=True, exist_ok=True)
    with contextlib.suppress(FileExistsError):
        home.mkdir(mode=HOME_MODE)
    info = home.lstat()
    if not stat.S_ISDIR(info.st_mode):
        raise OSError(f"{home} is not a directory")
    if owner is not None and (info.st_uid, info.st_gid) != (owner.uid, owner.gid):
        chown_tree(home, owner)
    os.chmod(home, HOME_MODE)
    return home


def chown_tree(root: Path, owner: Owner) -> None:
    """``chown -R`` without ever following a symlink (fd-relative, race-safe)."""
    os.chown(root, owner.uid, owner.gid, follow_symlinks=False)
    for _dirpath, dirnames, filenames, dirfd in os.fwalk(root, follow_symlinks=False):
        for name in (*dirnames, *filenames):
            with contextlib.suppress(FileNotFoundError):
                os.chown(name, owner.uid, owner.gid, dir_fd=dirfd, follow_symlinks=False)


def prepare_shared_folders(data: Path | None, scratch: Path | None, as_root: bool) -> None:
    """Create the shared folders; as root also fix their owner and mode.

    Without root the folders belong to the one account that runs every server,
    so ``data`` cannot be read-only for users; the start-up banner says so.
    """
    for path, mode in ((data, DATA_MODE), (scratch, SCRATCH_MODE)):
        if path is None:
            continue
        for parent in reversed(path.parents):
            if not parent.exists():
                parent.mkdir(mode=0o755)
        with contextlib.suppress(FileExistsError):
            path.mkdir(mode=mode)
        if as_root:
            os.chown(path, 0, 0, follow_symlinks=False)
            os.chmod(path, mode)


def link_shared_folders(home: Path, links: dict[str, Path], owner: Owner | None) -> list[str]:
    """Link ``~/<name>`` to each shared folder; leave anything the user put there alone.

    Returns notes for the log (links that could not be made).
    """
    notes: list[str] = []
    for name, target in links.items():
        link = home / name
        if os.path.lexists(link):
            if not (link.is_symlink() and os.readlink(link) == str(target)):
                notes.append(f"{link} exists and is not a link to {target}; left as it is")
            continue
        try:
            os.symlink(target, link)
        except FileExistsError:  # the user made one meanwhile: theirs wins
            continue
        if owner is not None:
            os.chown(link, owner.uid, owner.gid, follow_symlinks=False)
    return notes


def unreachable_reason(path: Path, need_read: bool = True) -> str | None:
    """Why an unprivileged user could not use ``path`` (None: they can).

    Checks the "other" permission bits along the path and along the path of
    every symlink on the way (``/root`` at mode 0700 is the usual culprit for
    Python environments installed by root).
    """
    seen: set[Path] = set()
    pending = [Path(os.path.abspath(path))]
    while pending:
        current = pending.pop()
        if current in seen:
            continue
        seen.add(current)
        for parent in reversed(current.parents):
            problem = _dir_problem(parent)
            if problem:
                return problem
        try:
            info = current.lstat()
        except OSError as exc:
            return f"{current}: {exc.strerror}"
        if stat.S_ISLNK(info.st_mode):
            target = Path(os.readlink(current))
            pending.append(target if target.is_absolute() else current.parent / target)
            continue
        if stat.S_ISDIR(info.st_mode):
            problem = _dir_problem(current)
            if problem:
                return problem
        elif need_read and not info.st_mode & stat.S_IROTH:
            return f"{current} is not readable by other users (mode {info.st_mode & 0o777:04o})"
    return None


def _dir_problem(directory: Path) -> str | None:
    try:
        mode = directory.stat().st_mode
    except OSError as exc:
        return f"{directory}: {exc.strerror}"
    if not mode & stat.S_IXOTH:
        return f"{directory} is not searchable by other users (mode {mode & 0o7777:04o})"
    return None


def interpreter_of(script: Path) -> Path | None:
    """The ``#!`` interpreter of a script (None for binaries or unreadable files)."""
    try:
        with open(script, "rb") as handle:
            first = handle.readline(512)
    except OSError:
        return None
    if not first.startswith(b"#!"):
        return None
    words = first[2:].decode(errors="replace").split()
    return Path(words[0]) if words else None


def command_unusable_reason(executable: Path) -> str | None:
    """Why a system user could not run ``executable`` (a script's interpreter included)."""
    problem = unreachable_reason(executable)
    if problem:
        return problem
    interpreter = interpreter_of(executable)
    if interpreter is not None:
        return unreachable_reason(interpreter)
    return None


def isolation_blocker(executable: Path, homes_dir: Path) -> str | None:
    """Why a per-user system account could not run its server here (None: it could)."""
    problem = command_unusable_reason(executable)
    if problem:
        return (
            f"{problem}, so system users cannot run {executable}; labfleet up provisions a "
            "world-readable one under /opt/labfleet when a system python3 is present "
            "(python -m labfleet.spawn.server_env), or point a profile's 'environment' at "
            "one; local.isolation: none runs servers as root instead"
        )
    problem = unreachable_reason(homes_dir)
    if problem:
        return f"{problem}, so system users cannot reach their homes in {homes_dir}"
    return None
