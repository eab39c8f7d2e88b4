"""Private runtime directories: where a server's kernels put their ZeroMQ sockets.

Kernels talk to their server over ZeroMQ. On TCP loopback every local account
can connect to those ports (iopub needs no key: a neighbour could read every
output live). With the ``ipc`` transport the channels are Unix sockets in a
directory only the server's own account can enter, so the kernel is reachable
by its owner alone.

Unix socket paths are limited to 107 bytes, and a kernel's socket is named
``kernel-<uuid>-ipc-<n>`` inside the runtime directory, so the directory must
be short: ``/run/labfleet-<tag>/<uid>``. The base belongs to root (0711) and
sits where only root can create names (``/run``), so no user can plant it.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import stat
from pathlib import Path

RUN_ROOTS = (Path("/run"), Path("/var/run"))
#: longest runtime directory that leaves room for ``/kernel-<uuid36>-ipc-NN``
MAX_DIR = 107 - len("/kernel-00000000-0000-0000-0000-000000000000-ipc-99")


class RuntimeDirError(OSError):
    """No private runtime directory can be made here; the message says why."""


def runtime_base(tag: str) -> Path:
    for root in RUN_ROOTS:
        if root.is_dir():
            return root / f"labfleet-{tag}"
    raise RuntimeDirError("neither /run nor /var/run exists: no place for private kernel sockets")


def _owned_dir(path: Path, uid: int, gid: int, mode: int) -> None:
    """Make ``path`` a real directory owned by uid:gid with ``mode`` (never via a symlink)."""
    with contextlib.suppress(FileExistsError):
        os.mkdir(path, mode)
    info = path.lstat()
    if not stat.S_ISDIR(info.st_mode):
        raise RuntimeDirError(f"{path} exists and is not a directory")
    if (info.st_uid, info.st_gid) != (uid, gid):
        os.chown(path, uid, gid, follow_symlinks=False)
    if stat.S_IMODE(info.st_mode) != mode:
        os.chmod(path, mode)


def ensure_runtime_dir(tag: str, uid: int, gid: int) -> Path:
    """``/run/labfleet-<tag>/<uid>``: 0700 and owned by the server's account (root only)."""
    base = runtime_base(tag)
    _owned_dir(base, 0, 0, 0o711)
    path = base / str(uid)
    if len(str(path)) > MAX_DIR:
        raise RuntimeDirError(f"{path} is too long for Unix socket paths")
    _owned_dir(path, uid, gid, 0o700)
    return path


def remove_runtime_dir(tag: str, uid: int) -> str | None:
    try:
        path = runtime_base(tag) / str(uid)
    except RuntimeDirError:
        return None
    if not path.is_dir() or path.is_symlink():
        return None
    shutil.rmtree(path, ignore_errors=True)
    return str(path)


def remove_runtime_base(tag: str) -> str | None:
    try:
        path = runtime_base(tag)
    except RuntimeDirError:
        return None
    if not path.is_dir() or path.is_symlink():
        return None
    shutil.rmtree(path, ignore_errors=True)
    return str(path)
