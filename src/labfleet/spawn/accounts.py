"""One system account per hub user, so servers and kernels never run as root.

The account name is scoped to the platform: ``lf`` + a short hash of the data
directory + ``-`` + the collision-free slug (``lf3fa2c-alice``), so two
platforms on one host never share a uid for the same name (plain ``lf-<slug>``
without a data directory, for callers outside a platform). A name is checked three times before
``useradd`` sees it: the hub username must be acceptable, it must not be the
name of a system account, and the derived account name must match a strict
pattern. An existing account is only reused when labfleet created it (its
comment carries our marker) and it is not a system account, so a hostile or
unlucky name can never take over ``root``, ``daemon`` or somebody's login.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import pwd
import re
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from labfleet.naming import system_account, user_slug
from labfleet.usernames import canonical_username, username_problem

#: The GECOS comment of every account labfleet creates (how we recognise ours).
MARKER = "labfleet user"
#: What ``useradd`` is ever given: ``lf`` + an optional platform tag + ``-`` + a plain
#: slug, at most 32 characters.
_ACCOUNT_NAME = re.compile(r"lf(?:[0-9a-f]{5})?-[a-z][a-z0-9-]{0,28}")
_MAX_ACCOUNT = 32
_TAG_IN_NAME = 5
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


def platform_tag(data_dir: Path) -> str:
    """The platform's id on this host: a hash of its data directory (also its cgroup parent)."""
    return hashlib.sha256(str(data_dir.resolve()).encode()).hexdigest()[:8]


def cgroup_parent_of(data_dir: Path) -> str:
    """The parent control group of this platform's servers (``labfleet-<tag>``)."""
    return f"labfleet-{platform_tag(data_dir)}"


def platform_marker(tag: str) -> str:
    """The GECOS comment of this platform's accounts: ours, and whose."""
    return f"{MARKER} {tag}" if tag else MARKER


def account_name(username: str, tag: str = "") -> str:
    """``lf<tag5>-<slug>`` for a platform's account (``lf-<slug>`` without a tag)."""
    if not tag:
        return system_account(username)
    return f"lf{tag[:_TAG_IN_NAME]}-{user_slug(username)}"


def platform_account(data_dir: Path, username: str) -> str:
    """The system account ``username`` gets on the platform of ``data_dir``."""
    return account_name(username, platform_tag(data_dir))


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


def refusal_reason(
    username: str, lookup: Lookup = pwd.getpwnam, first_uid: int = 0, tag: str = ""
) -> str | None:
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
    account = account_name(username, tag)
    if not _ACCOUNT_NAME.fullmatch(account) or len(account) > _MAX_ACCOUNT:
        return f"the derived account name {account!r} is not safe"
    return None


def check_existing(entry: pwd.struct_passwd, first_uid: int, tag: str = "") -> None:
    """Reuse an existing account only if labfleet made it (for this platform), unprivileged."""
    if entry.pw_uid == 0 or entry.pw_gid == 0:
        raise AccountRefused(f"the account {entry.pw_name!r} exists and is privileged")
    if entry.pw_uid < first_uid:
        raise AccountRefused(f"the account {entry.pw_name!r} exists and is a system account")
    if not entry.pw_gecos.startswith(MARKER):
        raise AccountRefused(
            f"the account {entry.pw_name!r} exists but was not created by labfleet; "
            "rename or remove it, or give it the comment 'labfleet user'"
        )
    if tag and entry.pw_gecos != platform_marker(tag):
        raise AccountRefused(
            f"the account {entry.pw_name!r} belongs to another labfleet platform "
            f"({entry.pw_gecos!r}); remove it or use another data directory"
        )


def useradd_argv(account: str, home: Path, tag: str = "") -> list[str]:
    """The exact ``useradd`` command (no shell; ``--`` ends the options)."""
    if not _ACCOUNT_NAME.fullmatch(account) or len(account) > _MAX_ACCOUNT:
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
        platform_marker(tag),
        "--",
        account,
    ]


def ensure_account(
    username: str,
    home: Path,
    lookup: Lookup = pwd.getpwnam,
    run: Callable[[list[str]], subprocess.CompletedProcess[str]] | None = None,
    data_dir: Path | None = None,
) -> SystemAccount:
    """The user's system account (scoped to ``data_dir``'s platform), created on first use.

    Needs root to create. Blocking (``useradd``); call it from a thread in async code.
    """
    tag = platform_tag(data_dir) if data_dir is not None else ""
    reason = refusal_reason(username, lookup, tag=tag)
    if reason:
        raise AccountRefused(f"no system account for {username!r}: {reason}")
    account = account_name(username, tag)
    first_uid = uid_min()
    with _useradd_lock:
        entry = _lookup_or_none(lookup, account)
        if entry is None:
            _useradd(useradd_argv(account, home, tag), run or _run)
            entry = lookup(account)
    check_existing(entry, first_uid, tag)
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

    ``auto``: whenever root — a blocker (``blocker`` says what) then refuses the
    server instead of running it as root: only ``none`` runs servers as root;
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
    return root


# --- removal (``labfleet users remove --purge``, uninstall, tests) ---------------------
def _kill_uid(uid: int) -> None:
    """SIGKILL every process of ``uid`` (userdel refuses while the account runs anything)."""
    import signal

    for _ in range(50):
        found = False
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                owner = entry.stat().st_uid
            except OSError:
                continue
            if owner == uid:
                found = True
                with contextlib.suppress(OSError):
                    os.kill(int(entry.name), signal.SIGKILL)
        if not found:
            return
        time.sleep(0.05)


def _delete_account(entry: pwd.struct_passwd, run: Callable[[list[str]], Any]) -> str | None:
    _kill_uid(entry.pw_uid)
    result = run(["userdel", "--", entry.pw_name])
    if result.returncode != 0:
        return None
    return f"system account {entry.pw_name} (uid {entry.pw_uid})"


def purge_local_user(data_dir: Path, username: str) -> list[str]:
    """Remove this platform's system account and control groups of ``username``.

    Only an account this platform created (its GECOS names the platform) is
    removed; its processes are killed first. The home is left alone (the caller
    decides whether to keep, rename or archive it). Returns what was removed,
    in words; empty when there was nothing (or when not root). Blocking.
    """
    from labfleet.spawn.limits.platform import remove_user_groups
    from labfleet.spawn.runtime_dirs import remove_runtime_dir

    if not is_root():
        return []
    tag = platform_tag(data_dir)
    removed = [
        f"control group {path}"
        for path in remove_user_groups(cgroup_parent_of(data_dir), user_slug(username))
    ]
    entry = _lookup_or_none(pwd.getpwnam, account_name(username, tag))
    if entry is not None and entry.pw_gecos == platform_marker(tag) and entry.pw_uid != 0:
        runtime = remove_runtime_dir(tag, entry.pw_uid)
        if runtime:
            removed.append(f"runtime directory {runtime}")
        done = _delete_account(entry, _run)
        if done:
            removed.append(done)
    return removed


def remove_platform_leftovers(data_dir: Path) -> list[str]:
    """After a clean stop (every server gone): remove the cgroup parent and runtime dirs."""
    from labfleet.spawn.limits.platform import remove_parent
    from labfleet.spawn.runtime_dirs import remove_runtime_base

    if not is_root():
        return []
    removed = remove_parent(cgroup_parent_of(data_dir))
    base = remove_runtime_base(platform_tag(data_dir))
    return [*removed, base] if base else removed


def purge_platform(data_dir: Path) -> list[str]:
    """Remove every system account and the cgroup parent of this platform (uninstall)."""
    from labfleet.spawn.limits.platform import remove_parent
    from labfleet.spawn.runtime_dirs import remove_runtime_base

    if not is_root():
        return []
    tag = platform_tag(data_dir)
    removed = [f"control group {path}" for path in remove_parent(cgroup_parent_of(data_dir))]
    for entry in pwd.getpwall():
        if entry.pw_gecos == platform_marker(tag) and entry.pw_uid != 0:
            done = _delete_account(entry, _run)
            if done:
                removed.append(done)
    base = remove_runtime_base(tag)
    if base:
        removed.append(f"runtime directory {base}")
    return removed


def purge_accounts_under(root: Path) -> list[str]:
    """Remove every labfleet platform account whose home lies under ``root``.

    For a tree of data directories that is going away as a whole (a test
    session's temporary folder, an uninstalled prefix): their platforms can no
    longer run, so their accounts go, processes first. Returns what was removed.
    """
    if not is_root():
        return []
    root = root.resolve()
    removed: list[str] = []
    for entry in pwd.getpwall():
        if not entry.pw_gecos.startswith(f"{MARKER} ") or entry.pw_uid == 0:
            continue
        if not Path(entry.pw_dir).resolve().is_relative_to(root):
            continue
        done = _delete_account(entry, _run)
        if done:
            removed.append(done)
    return removed


def purge_orphaned_accounts() -> list[str]:
    """Remove labfleet platform accounts whose data directory no longer exists.

    A platform's account has its home at ``<data_dir>/homes/<slug>``; when that data
    directory is gone (deleted by hand, a finished test run), nothing can use the
    account any more. Accounts of existing data directories are never touched.
    """
    if not is_root():
        return []
    removed: list[str] = []
    for entry in pwd.getpwall():
        if not entry.pw_gecos.startswith(f"{MARKER} ") or entry.pw_uid == 0:
            continue
        data_dir = Path(entry.pw_dir).parent.parent
        if data_dir.exists() or platform_marker(platform_tag(data_dir)) != entry.pw_gecos:
            continue
        done = _delete_account(entry, _run)
        if done:
            removed.append(done)
    return removed
