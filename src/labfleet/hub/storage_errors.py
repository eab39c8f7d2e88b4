"""Name the storage fault behind a failed write: disk full, read-only, or locked.

SQLite reports a full disk as "database or disk is full" deep inside a chain
of exceptions; a later ``ROLLBACK`` or a failed login lookup then raises
something unrelated ("cannot rollback - no transaction is active", a 403
"Missing or invalid credentials"), which is what people see. This module only
*recognises* the original fault in an exception chain and words it; the hub
(``hub.storage_handlers``) and the CLI (``cli.common``) decide how to show it.

Some faults reach SQLite as a vaguer code: a database already open when its
disk turns read-only fails to create its journal ("unable to open database
file", SQLITE_CANTOPEN) or to write it ("disk I/O error", SQLITE_IOERR), with
the kernel's EROFS/ENOSPC lost on the way. For those the caller may pass a
``probe`` (``free_space.write_probe``: try a small write in the data dir) whose
error names the cause. Pure apart from that probe, which the caller supplies.
"""

from __future__ import annotations

import enum
import errno
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path


class StorageFault(enum.Enum):
    FULL = "full"
    READ_ONLY = "read-only"
    LOCKED = "locked"
    IO_ERROR = "i/o error"


#: SQLite primary result codes (the low byte of an extended code)
_SQLITE_CODES = {
    sqlite3.SQLITE_FULL: StorageFault.FULL,
    sqlite3.SQLITE_READONLY: StorageFault.READ_ONLY,
    sqlite3.SQLITE_BUSY: StorageFault.LOCKED,
    sqlite3.SQLITE_LOCKED: StorageFault.LOCKED,
}
#: PostgreSQL SQLSTATEs (disk_full, read_only_sql_transaction, lock_not_available)
_PG_STATES = {
    "53100": StorageFault.FULL,
    "25006": StorageFault.READ_ONLY,
    "55P03": StorageFault.LOCKED,
}
_OS_ERRNOS = {
    errno.ENOSPC: StorageFault.FULL,
    errno.EDQUOT: StorageFault.FULL,
    errno.EROFS: StorageFault.READ_ONLY,
}
#: what a write probe may answer besides the above: the disk itself fails
_PROBE_ERRNOS = {**_OS_ERRNOS, errno.EIO: StorageFault.IO_ERROR}
#: SQLite codes that hide the kernel's reason: ask the probe
_VAGUE_SQLITE_CODES = (sqlite3.SQLITE_CANTOPEN, sqlite3.SQLITE_IOERR)
_VAGUE_PHRASES = ("unable to open database file", "disk i/o error")
#: message fragments, for drivers that give no code (older sqlite3, wrapped errors)
_PHRASES = (
    ("database or disk is full", StorageFault.FULL),
    ("no space left on device", StorageFault.FULL),
    ("disk quota exceeded", StorageFault.FULL),
    ("readonly database", StorageFault.READ_ONLY),
    ("read-only file system", StorageFault.READ_ONLY),
    ("database is locked", StorageFault.LOCKED),
    ("database table is locked", StorageFault.LOCKED),
)


@dataclass(frozen=True)
class StorageProblem:
    fault: StorageFault
    #: the low-level message as the driver or kernel gave it ("database or disk is full")
    detail: str


def _chain(exc: BaseException) -> list[BaseException]:
    """The exception, what caused it, and what it interrupted (SQLAlchemy's ``.orig`` too)."""
    seen: list[BaseException] = []
    todo: list[BaseException | None] = [exc]
    while todo:
        item = todo.pop(0)
        if item is None or any(item is s for s in seen):
            continue
        seen.append(item)
        todo += [getattr(item, "orig", None), item.__cause__, item.__context__]
    return seen


def _fault_of(exc: BaseException) -> StorageFault | None:
    code = getattr(exc, "sqlite_errorcode", None)
    if isinstance(code, int) and (code & 0xFF) in _SQLITE_CODES:
        return _SQLITE_CODES[code & 0xFF]
    state = getattr(exc, "sqlstate", None) or getattr(exc, "pgcode", None)
    if isinstance(state, str) and state in _PG_STATES:
        return _PG_STATES[state]
    if isinstance(exc, OSError) and exc.errno in _OS_ERRNOS:
        return _OS_ERRNOS[exc.errno]
    if isinstance(exc, (sqlite3.Error, OSError)) or type(exc).__module__.startswith(
        ("sqlalchemy", "psycopg")
    ):
        text = str(exc).lower()
        for phrase, fault in _PHRASES:
            if phrase in text:
                return fault
    return None


def _is_vague(exc: BaseException) -> bool:
    code = getattr(exc, "sqlite_errorcode", None)
    if isinstance(code, int):
        return (code & 0xFF) in _VAGUE_SQLITE_CODES
    if isinstance(exc, sqlite3.Error) or type(exc).__module__.startswith("sqlalchemy"):
        return any(phrase in str(exc).lower() for phrase in _VAGUE_PHRASES)
    return False


def _detail(exc: BaseException) -> str:
    return str(getattr(exc, "orig", None) or exc).splitlines()[0]


def probe_problem(failed: OSError, context: str = "") -> StorageProblem | None:
    """What a failed write probe in the data dir says (EIO too: the disk itself fails)."""
    if failed.errno not in _PROBE_ERRNOS:
        return None
    reason = failed.strerror or str(failed)
    return StorageProblem(
        _PROBE_ERRNOS[failed.errno], f"{context}: {reason}" if context else reason
    )


def classify(
    exc: BaseException, probe: Callable[[], OSError | None] | None = None
) -> StorageProblem | None:
    """The storage fault somewhere in ``exc``'s chain, or None if it is not one.

    ``probe`` is asked only when the chain holds nothing clearer than SQLite's
    "unable to open database file" or "disk I/O error"; the error it returns (if
    any) names the fault. A disk I/O error the probe cannot explain is still one.
    """
    chain = _chain(exc)
    for item in chain:
        fault = _fault_of(item)
        if fault is not None:
            return StorageProblem(fault, _detail(item))
    vagues = [item for item in chain if _is_vague(item)]
    if not vagues:
        return None
    # the driver's own error reads best ("unable to open database file"), not its wrappers
    vague = next((v for v in vagues if isinstance(v, sqlite3.Error)), vagues[0])
    found = probe() if probe is not None else None
    named = probe_problem(found, _detail(vague)) if found is not None else None
    if named is not None:
        return named
    if (
        "i/o error" in str(vague).lower()
        or ((getattr(vague, "sqlite_errorcode", 0) or 0) & 0xFF) == sqlite3.SQLITE_IOERR
    ):
        return StorageProblem(StorageFault.IO_ERROR, _detail(vague))
    return None


def explain(problem: StorageProblem, where: Path | None = None) -> str:
    """One paragraph for a person: what is wrong, what to do, that nothing was lost."""
    place = f"the data directory {where}" if where else "labfleet's data directory"
    if problem.fault is StorageFault.FULL:
        head = f"the disk holding {place} is full"
        todo = "free some space there; labfleet carries on by itself once there is room"
    elif problem.fault is StorageFault.READ_ONLY:
        head = f"{place} is read-only (its disk was remounted read-only or lost write access)"
        todo = "make it writable again (check the disk and `mount`); no restart is needed"
    elif problem.fault is StorageFault.IO_ERROR:
        head = f"the disk holding {place} reports input/output errors"
        todo = (
            "check the disk (`dmesg`, its health) and its mount; labfleet carries on by "
            "itself once writes work again"
        )
    else:
        head = "another program holds a lock on labfleet's database"
        todo = (
            "wait for it to finish (a backup, an open `sqlite3` shell, a second labfleet "
            "command) and try again"
        )
    return (
        f"labfleet could not save this change: {head} ({problem.detail}). "
        f"Nothing was changed or corrupted; {todo}."
    )


def http_status(problem: StorageProblem) -> int:
    """507 Insufficient Storage for a full disk; 503 (try again later) otherwise."""
    return 507 if problem.fault is StorageFault.FULL else 503
