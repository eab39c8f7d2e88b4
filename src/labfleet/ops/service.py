"""A systemd unit that runs ``labfleet up`` for one data directory and survives reboots.

:func:`render_unit` is a pure builder (spec in, unit text out); :func:`install`,
:func:`uninstall` and :func:`unit_status` are the effects. The hardening is chosen so that
spawning keeps working, and each option that is *left out* says why in the unit itself.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

UNIT_DIR = Path("/etc/systemd/system")

#: options that would break the platform, and why (written into the unit as comments)
LEFT_OUT = (
    "ProtectHome: users' homes may live under /home, /root holds venvs; servers must reach them",
    "ProtectSystem=full/strict: creating system accounts (useradd) writes /etc",
    "ProtectKernelTunables/ProtectControlGroups: per-user limits write /sys/fs/cgroup",
    "MemoryDenyWriteExecute: JIT compilers in users' kernels (numba, V8) need it",
    "RestrictNamespaces/PrivateUsers: servers and containers may use namespaces",
)


@dataclass(frozen=True)
class UnitSpec:
    name: str
    data_dir: Path
    config: Path | None
    python: str
    ip: str = "127.0.0.1"
    port: int = 8000

    @property
    def unit_name(self) -> str:
        return f"labfleet-{self.name}.service"

    def exec_start(self) -> list[str]:
        argv = [self.python, "-m", "labfleet.cli.main", "up", "--data-dir", str(self.data_dir)]
        if self.config is not None:
            argv += ["-c", str(self.config)]
        return [*argv, "--ip", self.ip, "--port", str(self.port)]


def name_for(data_dir: Path) -> str:
    """A unit-safe name from the data directory's last component."""
    slug = re.sub(r"[^a-z0-9-]+", "-", data_dir.resolve().name.lower()).strip("-")
    return slug or "data"


def render_unit(spec: UnitSpec) -> str:
    exec_start = " ".join(shlex.quote(a) for a in spec.exec_start())
    left_out = "\n".join(f"# not set: {line}" for line in LEFT_OUT)
    return f"""\
# Written by `labfleet service install`; `labfleet service uninstall` removes it.
[Unit]
Description=labfleet multi-user Jupyter platform ({spec.data_dir})
Documentation=https://github.com/labfleet/labfleet/blob/main/docs/operating.md
After=network-online.target
Wants=network-online.target

[Service]
Type=simple
ExecStart={exec_start}
WorkingDirectory={spec.data_dir}
Environment=PYTHONUNBUFFERED=1
# SIGTERM to labfleet up: it records running servers (resumed at the next start), then stops
# hub, proxy and servers; whatever is left after TimeoutStopSec is killed.
KillMode=mixed
KillSignal=SIGTERM
TimeoutStopSec=120
Restart=on-failure
RestartSec=5
LimitNOFILE=65536
UMask=0077
# per-user control groups (memory/CPU limits) live below the service's own
Delegate=yes

# hardening that leaves spawning intact
ProtectSystem=true
PrivateTmp=yes
ProtectKernelModules=yes
ProtectKernelLogs=yes
ProtectClock=yes
ProtectHostname=yes
RestrictRealtime=yes
RestrictSUIDSGID=yes
LockPersonality=yes
SystemCallArchitectures=native
RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6 AF_NETLINK
{left_out}

[Install]
WantedBy=multi-user.target
"""


def systemd_running() -> bool:
    return Path("/run/systemd/system").is_dir() and shutil.which("systemctl") is not None


def _systemctl(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["systemctl", *args], capture_output=True, text=True, timeout=120)


def install(spec: UnitSpec, output: Path | None = None, start: bool = True) -> list[str]:
    """Write the unit (0644); enable and start it when it went to systemd's directory."""
    path = output or UNIT_DIR / spec.unit_name
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.new")
    tmp.write_text(render_unit(spec))
    os.chmod(tmp, 0o644)
    os.replace(tmp, path)
    notes = [f"wrote {path}"]
    if output is not None and path.parent != UNIT_DIR:
        notes.append(f"copy it to {UNIT_DIR}/ and run: systemctl enable --now {path.name}")
    elif not systemd_running():
        notes.append(f"systemd is not running here; on boot: systemctl enable --now {path.name}")
    elif start:
        for args in (("daemon-reload",), ("enable", "--now", path.name)):
            result = _systemctl(*args)
            if result.returncode != 0:
                raise RuntimeError(f"systemctl {' '.join(args)}: {result.stderr.strip()}")
        notes.append(f"enabled and started {path.name}")
    return notes


def uninstall(unit_name: str, output: Path | None = None) -> list[str]:
    path = output or UNIT_DIR / unit_name
    notes = []
    if systemd_running() and output is None:
        _systemctl("disable", "--now", unit_name)
        notes.append(f"stopped and disabled {unit_name}")
    if path.exists():
        path.unlink()
        notes.append(f"removed {path}")
        if systemd_running():
            _systemctl("daemon-reload")
    else:
        notes.append(f"{path} was not installed")
    return notes


def unit_status(unit_name: str, output: Path | None = None) -> tuple[bool, str]:
    """(installed, a line saying how it is)."""
    path = output or UNIT_DIR / unit_name
    if not path.exists():
        return False, f"{unit_name}: not installed ({path} missing)"
    if not systemd_running():
        return True, f"{unit_name}: installed at {path}; systemd is not running on this machine"
    active = _systemctl("is-active", unit_name).stdout.strip()
    enabled = _systemctl("is-enabled", unit_name).stdout.strip()
    return True, f"{unit_name}: installed at {path}, {enabled}, {active}"


def default_spec(
    data_dir: Path, config: Path | None, name: str | None, ip: str, port: int
) -> UnitSpec:
    data_dir = data_dir.resolve()
    return UnitSpec(
        name=name or name_for(data_dir),
        data_dir=data_dir,
        config=config.resolve() if config else None,
        python=sys.executable,
        ip=ip,
        port=port,
    )
