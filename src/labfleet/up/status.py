"""What one machine really enforces: lines for the start-up banner and ``labfleet status``.

Each line states a fact found on this machine (root or not, which cgroup
controllers, which GPUs) rather than what the config asked for, so the
banner never claims isolation or limits that are not there.
"""

from __future__ import annotations

import getpass
import json
import os
from pathlib import Path

from labfleet.config.model import FleetConfig
from labfleet.config.profiles import Machine, is_environment_name, machine_problems
from labfleet.envs.store import Store
from labfleet.hub.free_space import data_dir_space, free_space_warning
from labfleet.hub.settings import cgroup_parent
from labfleet.runtime import Runtime
from labfleet.spawn.accounts import is_root, resolve_isolation
from labfleet.spawn.gpus import Detected, detect_devices
from labfleet.spawn.homes import isolation_blocker
from labfleet.spawn.limits import Limits, LimitsProbe, probe
from labfleet.spawn.processes import is_alive
from labfleet.spawn.server_env import default_singleuser
from labfleet.tls.service import certificate_line


def _commands(config: FleetConfig) -> list[Path]:
    """Every ``jupyterhub-singleuser`` a profile may run (ours plus profile environments)."""
    default = default_singleuser().parent.parent  # ours, or the provisioned one (/opt/labfleet)
    prefixes = {default} | {
        Path(p.environment)
        for p in config.profiles
        if p.environment and not is_environment_name(p.environment)  # managed: world-readable
    }
    return sorted(prefix / "bin" / "jupyterhub-singleuser" for prefix in prefixes)


def isolation_facts(config: FleetConfig, homes_dir: Path | None) -> tuple[bool, list[str]]:
    """(isolated at all, problems that switch it off or break it)."""
    root = is_root()
    problems: list[str] = []
    if root and config.local.isolation != "none":
        for command in _commands(config):
            blocker = isolation_blocker(command, homes_dir or Path("/"))
            if blocker and blocker not in problems:
                problems.append(blocker)
    try:
        isolated = resolve_isolation(
            config.local.isolation, root, problems[0] if problems else None
        )
    except RuntimeError as exc:
        return False, [str(exc)]
    return isolated, problems


def limits_facts(config: FleetConfig, runtime: Runtime | None = None) -> LimitsProbe:
    """The backend, tried for real: a group is created and removed before we claim it works."""
    found = (
        probe(config.local.limits, cgroup_parent(runtime))
        if runtime
        else probe(config.local.limits)
    )
    if found.backend is None:
        return found
    trial = f"probe-{os.getpid()}"
    try:
        found.backend.create(trial, Limits(pids=config.local.pids_max))
    except OSError as exc:  # LimitsError, or a hierarchy that refuses new groups
        return LimitsProbe(None, f"{found.reason} is present but unusable: {exc}")
    finally:
        found.backend.remove(trial)
    return found


def gpu_facts(config: FleetConfig) -> Detected:
    try:
        return detect_devices(config.local.gpus.devices)
    except (OSError, ValueError) as exc:
        return Detected([], f"unreadable device list: {exc}")


def machine_facts(config: FleetConfig, data_dir: Path | None = None) -> Machine:
    """CPUs, memory, GPUs and (with ``data_dir``) managed environments profiles are checked
    against."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cpus = os.cpu_count() or 1
    memory = 0
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                memory = int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    environments = frozenset(Store(data_dir).names()) if data_dir is not None else frozenset()
    return Machine(
        cpus=cpus,
        memory=memory or 2**62,
        gpus=len(gpu_facts(config).devices),
        environments=environments,
    )


def machine_check(config: FleetConfig, data_dir: Path | None = None) -> tuple[list[str], list[str]]:
    """(errors, warnings) of the profiles against this machine (and ``data_dir``'s platform)."""
    return machine_problems(config.profiles, machine_facts(config, data_dir))


def _wants_limits(config: FleetConfig) -> bool:
    return any(p.cpu or p.memory for p in config.profiles)


def startup_warnings(config: FleetConfig, runtime: Runtime | None = None) -> list[str]:
    """Plain warnings for the banner: what is *not* protected on this machine."""
    warnings: list[str] = []
    homes = runtime.homes_dir if runtime else None
    isolated, problems = isolation_facts(config, homes)
    account = getpass.getuser()
    if not isolated:
        if config.local.isolation == "none":
            why = "local.isolation is none"
        elif not is_root():
            why = "labfleet is not running as root"
        else:
            why = problems[0] if problems else "isolation is not possible here"
        warnings.append(
            f"users are NOT isolated: every server runs as {account!r} ({why}); "
            "users can read each other's files and stop each other's processes"
        )
        if is_root():
            warnings.append("users' servers run as root")
    elif problems:
        warnings.extend(f"servers of some profiles cannot start: {p}" for p in problems)
    limits = limits_facts(config, runtime)
    if limits.backend is None:
        what = "CPU/memory limits of profiles" if _wants_limits(config) else "per-server limits"
        warnings.append(f"{what} are NOT enforced: {limits.reason}")
    elif limits.missing:
        missing = ", ".join(sorted(limits.missing))
        warnings.append(
            f"{limits.backend.name}: no {missing} controller; those limits are NOT enforced"
        )
    warnings.extend(machine_check(config)[1])
    if runtime is not None:  # a full disk stops logins and spawns (issue 11)
        low = free_space_warning(
            runtime.data_dir, data_dir_space(runtime.data_dir), config.local.min_free_space
        )
        warnings += [low] if low else []
    if config.local.shared.data and not isolated:
        warnings.append("the shared data folder is writable by users (no isolation)")
    return warnings


def _gpu_assignments(state_dir: Path) -> dict[str, str]:
    """``server → "devices"`` from the ledger, read-only (noting servers that are gone)."""
    try:
        data = json.loads((state_dir / "gpus.json").read_text())
    except (OSError, ValueError):
        return {}
    servers = data.get("servers") if isinstance(data, dict) else None
    if not isinstance(servers, dict):
        return {}
    shown: dict[str, str] = {}
    for owner, entry in servers.items():
        if not isinstance(entry, dict):
            continue
        devices = ", ".join(str(d) for d in entry.get("devices", []))
        pid, ticks = entry.get("pid"), entry.get("ticks")
        gone = isinstance(pid, int) and not is_alive(pid, ticks if isinstance(ticks, int) else None)
        shown[str(owner)] = devices + (" (server gone; freed at the next spawn)" if gone else "")
    return shown


def local_status_lines(config: FleetConfig, runtime: Runtime) -> list[str]:
    """A few lines on isolation, limits, GPUs and shared folders, as found now."""
    lines: list[str] = []
    from labfleet.up.components import down_lines  # what is down and why (supervisor's record)

    lines += [f"DOWN {line}" for line in down_lines(runtime.state_dir)]
    low = free_space_warning(
        runtime.data_dir, data_dir_space(runtime.data_dir), config.local.min_free_space
    )
    lines += [low] if low else []
    tls_line = certificate_line(config.tls, runtime.data_dir)  # issuer, names, expiry
    if tls_line:
        lines.append(tls_line)
    isolated, problems = isolation_facts(config, runtime.homes_dir)
    if isolated and problems:  # never a fallback to root: those servers are refused
        lines.append(f"isolation: on, but users' servers are REFUSED until fixed: {problems[0]}")
    elif isolated:
        lines.append(
            "isolation: on — each user's server runs as system account lf<tag>-<user>, home 0700"
        )
    else:
        reason = (
            problems[0]
            if problems
            else (
                "local.isolation is none"
                if config.local.isolation == "none"
                else "not running as root"
            )
        )
        lines.append(f"isolation: OFF — every server runs as {getpass.getuser()!r} ({reason})")
    limits = limits_facts(config, runtime)
    if limits.backend is None:
        lines.append(f"limits: NOT enforced — {limits.reason}")
    else:
        enforced = ", ".join(sorted(limits.backend.controllers))
        lines.append(
            f"limits: {limits.backend.name} ({enforced}) at {limits.backend.location()}; "
            f"pids cap {config.local.pids_max} per server"
        )
    found = gpu_facts(config)
    assigned = _gpu_assignments(runtime.state_dir)
    if found.devices:
        ids = ", ".join(d.id for d in found.devices)
        lines.append(
            f"GPUs: {len(found.devices)} found via {found.source} ({ids}); "
            f"mode {config.local.gpus.mode}; exposed through CUDA_VISIBLE_DEVICES "
            "(cooperative, not a device cgroup)"
        )
    else:
        lines.append(f"GPUs: none found ({found.source})")
    for owner, devices in sorted(assigned.items()):
        lines.append(f"  {owner}: {devices}")
    shared = config.local.shared
    for name, path in (("data (read-only)", shared.data), ("scratch", shared.scratch)):
        if path:
            lines.append(f"shared {name}: {runtime.data_dir / path}")  # absolute paths win
    return lines
