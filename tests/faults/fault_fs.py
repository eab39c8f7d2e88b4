"""A fault injector over a real file system: a FUSE passthrough whose writes can be made to fail.

Why: Linux refuses ``mount -o remount,ro`` while a program holds a file open for
writing, so a read-only data dir under a *running* hub (which keeps its database
open) cannot be made with a real remount. This file system forwards every call
to a real directory (``backing``) and, depending on one word in a control file,
answers the calls that would change something as the kernel would:

* ``rw``: nothing injected, a plain passthrough;
* ``ro``: every change fails with EROFS, even on files opened before (what an ext4
  remounted read-only after an error does; ``statvfs``'s ST_RDONLY flag comes from the
  mount, not from us, so it stays clear);
* ``full``: new data and new directories fail with ENOSPC (an empty file still fits, as
  on tmpfs) and ``statvfs`` reports no free blocks;
* ``eio``: every change fails with EIO (a dying disk).

Reads always work. The mode is read from the control file at each call, so a test
flips it with one write and nothing restarted. Run as a process of its own
(``python -m tests.faults.fault_fs BACKING MOUNT CONTROL``): FUSE calls are served
by it, and a test process doing file I/O on the mount must not be the one serving it.
"""

from __future__ import annotations

import errno
import functools
import os
import stat
import sys
from pathlib import Path
from typing import Any

import mfusepy as fuse  # type: ignore[import-untyped]

MODES = ("rw", "ro", "full", "eio")
_WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_TRUNC | os.O_APPEND | os.O_CREAT
_STAT_FIELDS = (
    "st_mode",
    "st_ino",
    "st_nlink",
    "st_uid",
    "st_gid",
    "st_size",
    "st_blocks",
    "st_blksize",
    "st_rdev",
)


def _errors(function: Any) -> Any:
    """A real OSError from the backing file system goes back to the caller as its errno."""

    @functools.wraps(function)  # mfusepy reads create()'s signature to pass it the flags
    def call(*args: Any, **kwargs: Any) -> Any:
        try:
            return function(*args, **kwargs)
        except OSError as exc:
            raise fuse.FuseOSError(exc.errno or errno.EIO) from exc

    return call


class FaultInjectingPassthrough(fuse.Operations):  # type: ignore[misc]
    use_ns = True

    def __init__(self, backing: Path, control: Path) -> None:
        self.backing = backing
        self.control = control

    # -- faults ----------------------------------------------------------------
    def mode(self) -> str:
        try:
            word = self.control.read_text().strip()
        except OSError:
            return "rw"
        return word if word in MODES else "rw"

    def _change(self, grows: bool = True) -> None:
        """Refuse a change the current mode forbids (``grows``: it may need new blocks)."""
        mode = self.mode()
        if mode == "ro":
            raise fuse.FuseOSError(errno.EROFS)
        if mode == "eio":
            raise fuse.FuseOSError(errno.EIO)
        if mode == "full" and grows:
            raise fuse.FuseOSError(errno.ENOSPC)

    def _real(self, path: str) -> str:
        return str(self.backing) + path

    # -- reads -------------------------------------------------------------------
    @_errors
    def getattr(self, path: str, fh: int | None = None) -> dict[str, Any]:
        st = os.fstat(fh) if fh is not None else os.lstat(self._real(path))
        attrs: dict[str, Any] = {name: getattr(st, name) for name in _STAT_FIELDS}
        attrs.update(st_atime=st.st_atime_ns, st_mtime=st.st_mtime_ns, st_ctime=st.st_ctime_ns)
        return attrs

    @_errors
    def readdir(self, path: str, fh: int) -> list[str]:
        return [".", "..", *os.listdir(self._real(path))]

    @_errors
    def readlink(self, path: str) -> str:
        return os.readlink(self._real(path))

    @_errors
    def access(self, path: str, amode: int) -> int:
        if amode & os.W_OK and self.mode() == "ro":
            raise fuse.FuseOSError(errno.EROFS)
        if not os.access(self._real(path), amode):
            raise fuse.FuseOSError(errno.EACCES)
        return 0

    @_errors
    def statfs(self, path: str) -> dict[str, Any]:
        sv = os.statvfs(self._real(path))
        fields = ("f_bsize", "f_frsize", "f_blocks", "f_bfree", "f_bavail", "f_files")
        attrs: dict[str, Any] = {name: getattr(sv, name) for name in fields}
        attrs.update(f_ffree=sv.f_ffree, f_favail=sv.f_favail, f_namemax=sv.f_namemax)
        mode = self.mode()
        if mode == "full":
            attrs.update(f_bfree=0, f_bavail=0)
        return attrs

    @_errors
    def open(self, path: str, flags: int) -> int:
        if flags & _WRITE_FLAGS:
            self._change(grows=False)
        return os.open(self._real(path), flags)

    @_errors
    def read(self, path: str, size: int, offset: int, fh: int) -> bytes:
        return os.pread(fh, size, offset)

    @_errors
    def flush(self, path: str, fh: int) -> int:
        return 0

    @_errors
    def release(self, path: str, fh: int) -> int:
        os.close(fh)
        return 0

    # -- changes -----------------------------------------------------------------
    @_errors
    def create(self, path: str, mode: int, flags: int = os.O_WRONLY) -> int:
        self._change(grows=False)
        return os.open(self._real(path), flags | os.O_CREAT, mode)

    @_errors
    def write(self, path: str, data: bytes, offset: int, fh: int) -> int:
        self._change()
        return os.pwrite(fh, data, offset)

    @_errors
    def truncate(self, path: str | None, length: int, fh: int | None = None) -> int:
        self._change(grows=False)
        if fh is not None:
            os.ftruncate(fh, length)
        else:
            assert path is not None
            os.truncate(self._real(path), length)
        return 0

    @_errors
    def fsync(self, path: str, datasync: int, fh: int) -> int:
        self._change(grows=False)
        (os.fdatasync if datasync else os.fsync)(fh)
        return 0

    @_errors
    def mknod(self, path: str, mode: int, dev: int) -> int:
        self._change(grows=False)
        os.mknod(self._real(path), mode, dev)
        return 0

    @_errors
    def mkdir(self, path: str, mode: int) -> int:
        self._change()
        os.mkdir(self._real(path), mode)
        return 0

    @_errors
    def rmdir(self, path: str) -> int:
        self._change(grows=False)
        os.rmdir(self._real(path))
        return 0

    @_errors
    def unlink(self, path: str) -> int:
        self._change(grows=False)
        os.unlink(self._real(path))
        return 0

    @_errors
    def symlink(self, target: str, source: str) -> int:
        self._change()
        os.symlink(source, self._real(target))
        return 0

    @_errors
    def link(self, target: str, source: str) -> int:
        self._change()
        os.link(self._real(source), self._real(target))
        return 0

    @_errors
    def rename(self, old: str, new: str) -> int:
        self._change(grows=False)
        os.rename(self._real(old), self._real(new))
        return 0

    @_errors
    def chmod(self, path: str, mode: int) -> int:
        self._change(grows=False)
        os.chmod(self._real(path), stat.S_IMODE(mode))
        return 0

    @_errors
    def chown(self, path: str, uid: int, gid: int) -> int:
        self._change(grows=False)
        os.chown(self._real(path), uid, gid, follow_symlinks=False)
        return 0

    @_errors
    def utimens(self, path: str, times: tuple[int, int] | None = None) -> int:
        self._change(grows=False)
        if times is None:
            os.utime(self._real(path), follow_symlinks=False)
        else:
            os.utime(self._real(path), ns=times, follow_symlinks=False)
        return 0


def main(argv: list[str]) -> None:
    backing, mount, control = (Path(a) for a in argv)
    fuse.FUSE(
        FaultInjectingPassthrough(backing.resolve(), control),
        str(mount),
        foreground=True,
        fsname="labfleet-fault-fs",
        # no cached attributes: a size or mode the kernel remembers would hide a change
        attr_timeout=0,
        entry_timeout=0,
    )


if __name__ == "__main__":
    main(sys.argv[1:])
