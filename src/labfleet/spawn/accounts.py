"""One system account per hub user, so servers and kernels never run as root.

The account name comes from :func:`labfleet.naming.system_account` (``lf-`` +
the collision-free slug), and a name is checked three times before
``useradd`` sees it: the hub username must be acceptable, it must not be the
name of a system account, and the derived account name must match a strict
pattern. An existing account is only reused when labfleet created it (its
comment carries our marker) and it is not a system account, so a hostile or
unlucky name can never take over ``root``, ``daemon`` or somebody's login.
"""

from __future__ import annotations

import os
import pwd
import re
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from labfleet.naming import system_account
from labfleet.usernames import canonical_username, username_problem

#: The GECOS comment of every account labfleet creates (how we recognise ours).
MARKER = "labfleet user"
#: What ``useradd`` is ever given: ``lf-`` + a plain slug, at most 32 characters.
_ACCOUNT_NAME = re.compile(r"lf-[a-z][a-z0-9-]{0,28}")
#: Hub usernames that are refused outright, whatever /etc/passwd says.
_ALWAYS_REFUSED = frozenset({"root", "toor", "daemon", "nobody", "sudo", "wheel", "adm"})
_DEFAULT_UID_MIN = 1000
#: useradd exit codes that mean "a lock file is busy": worth a retry
_BUSY_CODES = frozenset({1, 10})

_useradd_lock = threading.Lock()


class AccountRefused(ValueError):
    """A username that must not get a system account; the message is safe to show."""


class IsolationError(RuntimeError):
    """Isolation was asked for but cannot work here; the message says what to change."""


@dataclass(frozen=True)
class SystemAccount:
    name: str
    uid: int
    gid: int


Lookup = Callable[[str], pwd.struct_passwd]


def uid_min(login_defs: Path = Path("/etc/login.defs")) -> int:
    """First uid for regular users (``UID_MIN`` in login.defs, else 1000)."""
    try:
        for line in login_defs.read_text().splitlines():
            parts = line.split()
            if len(parts) == 2 and parts[0] == "UID_MIN" and parts[1].isdigit():
                return int(parts[1])
    except OSError:
        pass
    return _DEFAULT_UID_MIN


def _lookup_or_none(lookup: Lookup, name: str) -> pwd.struct_passwd | None:
    try:
        return lookup(name)
    except KeyError:
        return None


def refusal_reason(username: str, lookup: Lookup = pwd.getpwnam, first_uid: int = 0) -> str | None:
    """Why ``username`` may not get a system account (None: it may).

    Pure apart from ``lookup`` (the passwd database), so the checks are unit-tested
    with hostile names without running anything.
    """
    if username != canonical_username(username):
        return f"{username!r} is not a normalised username"
    problem = username_problem(username)
    if problem:
        return problem
    if username in _ALWAYS_REFUSED:
        return f"{username!r} is reserved for the operating system"
    same_name = _lookup_or_none(lookup, username)
    if same_name is not None and same_name.pw_uid < (first_uid or uid_min()):
        return f"{username!r} is the name of a system account"
    account = system_account(username)
    if not _ACCOUNT_NAME.fullmatch(account):
        return f"the derived account name {account!r} is not safe"
    return None


def check_existing(entry: pwd.struct_passwd, first_uid: int) -> None:
    """Reuse an existing account only if labfleet made it and it is unprivileged."""
    if entry.pw_uid == 0 or entry.pw_gid == 0:
        raise AccountRefused(f"the account {entry.pw_name!r} exists and is privileged")
    if entry.pw_uid < first_uid:
        raise AccountRefused(f"the account {entry.pw_name!r} exists and is a system account")
    if not entry.pw_gecos.startswith(MARKER):
        raise AccountRefused(
            f"the account {entry.pw_name!r} exists but was not created by labfleet; "
            "rename or remove it, or give it the comment 'labfleet user'"
        )


def useradd_argv(account: str, home: Path) -> list[str]:
    """The exact ``useradd`` command (no shell; ``--`` ends the options)."""
    if not _ACCOUNT_NAME.fullmatch(account):
        raise AccountRefused(f"{account!r} is not a safe account name")
    text = str(home)
    if any(ch in text for ch in ":\n\x00") or not home.is_absolute():
        raise AccountRefused(f"{text!r} cannot be a home directory in /etc/passwd")
    return [
        "useradd",
        "--home-dir",
        text,
        "--no-create-home",
        "--shell",
        "/bin/bash",
        "--user-group",
        "--comment",
        MARKER,
        "--",
        account,
    ]


def ensure_account(
    username: str,
    home: Path,
    lookup: Lookup = pwd.getpwnam,
    run: Callable[[list[str]], subprocess.CompletedProcess[str]] | None = None,
) -> SystemAccount:
    """The user's system account, created on first use. Needs root to create.

    Blocking (``useradd``); call it from a thread in async code.
    """
    reason = refusal_reason(username, lookup)
    if reason:
        raise AccountRefused(f"no system account for {username!r}: {reason}")
    account = system_account(username)
    first_uid = uid_min()
    with _useradd_lock:
        entry = _lookup_or_none(lookup, account)
        if entry is None:
            _useradd(useradd_argv(account, home), run or _run)
            entry = lookup(account)
    check_existing(entry, first_uid)
    return SystemAccount(name=account, uid=entry.pw_uid, gid=entry.pw_gid)


def _run(argv: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)


def _useradd(argv: list[str], run: Callable[[list[str]], subprocess.CompletedProcess[str]]) -> None:
    for attempt in range(8):
        result = run(argv)
        if result.returncode == 0:
            return
        if result.returncode not in _BUSY_CODES or attempt == 7:
            message = (result.stderr or result.stdout).strip()
            raise OSError(f"useradd failed ({result.returncode}): {message}")
        time.sleep(0.25 * (attempt + 1))  # another tool holds /etc/passwd's lock


def is_root() -> bool:
    return os.geteuid() == 0


def resolve_isolation(mode: str, root: bool, blocker: str | None = None) -> bool:
    """Whether servers run as per-user system accounts.

    ``auto``: when root and nothing blocks it (``blocker`` says what would);
    ``system-users``: always, and an error when not root; ``none``: never.
    """
    if mode == "none":
        return False
    if mode == "system-users":
        if not root:
            raise IsolationError(
                "local.isolation is 'system-users', but labfleet is not running as root; "
                "run it as root or set local.isolation: none"
            )
        return True
    return root and blocker is None
