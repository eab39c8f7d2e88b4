"""Which limits backend this machine offers, and why not when it offers none.

Parsing is pure (``/proc/self/mountinfo`` text in, mounts out) so the choice
is unit-tested for pure v2, hybrid and v1 layouts; :func:`probe` adds the
effects (reading files, checking that we may write).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from labfleet.spawn.limits.base import CONTROLLERS, LimitsBackend
from labfleet.spawn.limits.v1 import CgroupV1
from labfleet.spawn.limits.v2 import CgroupV2

MOUNTINFO = Path("/proc/self/mountinfo")


@dataclass(frozen=True)
class CgroupMount:
    path: Path
    version: int  # 1 or 2
    options: frozenset[str] = field(default_factory=frozenset)  # v1: controllers in super options


@dataclass(frozen=True)
class LimitsProbe:
    """The outcome of detection: a backend, or None and the reason, and what is missing."""

    backend: LimitsBackend | None
    reason: str
    missing: frozenset[str] = frozenset()


def _unescape(field_text: str) -> str:
    # mountinfo escapes space, tab, newline and backslash as \ooo
    out, i = [], 0
    while i < len(field_text):
        code = field_text[i + 1 : i + 4]
        if field_text[i] == "\\" and len(code) == 3 and code.isdigit():
            out.append(chr(int(code, 8)))
            i += 4
        else:
            out.append(field_text[i])
            i += 1
    return "".join(out)


def parse_mountinfo(text: str) -> list[CgroupMount]:
    mounts: list[CgroupMount] = []
    for line in text.splitlines():
        left, sep, right = line.partition(" - ")
        if not sep:
            continue
        fields = left.split()
        tail = right.split()
        if len(fields) < 5 or len(tail) < 3:
            continue
        fstype, super_options = tail[0], tail[2]
        path = Path(_unescape(fields[4]))
        if fstype == "cgroup2":
            mounts.append(CgroupMount(path, 2))
        elif fstype == "cgroup":
            mounts.append(CgroupMount(path, 1, frozenset(super_options.split(","))))
    return mounts


def v1_controller_mounts(mounts: list[CgroupMount]) -> dict[str, Path]:
    found: dict[str, Path] = {}
    for mount in mounts:
        if mount.version != 1:
            continue
        for controller in CONTROLLERS:
            if controller in mount.options and controller not in found:
                found[controller] = mount.path
    return found


def v2_controllers(mount: CgroupMount, read: Callable[[Path], str]) -> frozenset[str]:
    try:
        available = set(read(mount.path / "cgroup.controllers").split())
    except OSError:
        return frozenset()
    return frozenset(c for c in CONTROLLERS if c in available)


def choose(
    mode: str,
    mounts: list[CgroupMount],
    read: Callable[[Path], str],
    parent: str = "labfleet",
) -> LimitsProbe:
    """Pick a backend for ``mode`` (auto, v1, v2, none) from the mounted hierarchies.

    auto prefers v2 when its unified hierarchy offers the memory controller
    (pure v2 machines); a hybrid machine whose unified mount has no
    controllers gets v1.
    """
    if mode == "none":
        return LimitsProbe(None, "switched off in the config (local.limits: none)")
    v2_probe: LimitsProbe | None = None
    for mount in mounts:
        if mount.version == 2:
            controllers = v2_controllers(mount, read)
            if "memory" in controllers:
                backend = CgroupV2(mount.path, controllers, parent)
                v2_probe = LimitsProbe(
                    backend, f"cgroup v2 at {mount.path}", frozenset(CONTROLLERS) - controllers
                )
                break
    v1_mounts = v1_controller_mounts(mounts)
    v1_probe = None
    if "memory" in v1_mounts:
        v1_probe = LimitsProbe(
            CgroupV1(v1_mounts, parent), "cgroup v1", frozenset(CONTROLLERS) - set(v1_mounts)
        )
    if mode == "v2":
        return v2_probe or LimitsProbe(
            None,
            "local.limits is v2 but no cgroup v2 hierarchy with the memory controller is mounted",
        )
    if mode == "v1":
        return v1_probe or LimitsProbe(
            None, "local.limits is v1 but no cgroup v1 memory hierarchy is mounted"
        )
    chosen = v2_probe or v1_probe
    if chosen is None:
        return LimitsProbe(None, "no cgroup hierarchy with the memory controller is mounted")
    return chosen


def _read(path: Path) -> str:
    return path.read_text()


def probe(mode: str, parent: str = "labfleet", mountinfo: Path = MOUNTINFO) -> LimitsProbe:
    """Detect the backend on this machine, including whether we may use it (root)."""
    if mode == "none":
        return choose(mode, [], _read, parent)
    try:
        mounts = parse_mountinfo(mountinfo.read_text())
    except OSError as exc:
        return LimitsProbe(None, f"cannot read {mountinfo}: {exc.strerror}")
    found = choose(mode, mounts, _read, parent)
    if found.backend is None:
        return found
    if os.geteuid() != 0:
        return LimitsProbe(
            None, f"{found.reason} is present, but creating control groups needs root"
        )
    return found
