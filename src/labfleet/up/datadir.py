"""The data directory: one place for the database, secrets, homes and state.

Ports chosen on first start are persisted so that a restarted hub finds the
proxy it left running and servers keep talking to the same hub address.
"""

from __future__ import annotations

import json
import os
import socket
import stat
from pathlib import Path

from labfleet.runtime import Runtime


def free_port(ip: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((ip, 0))
        port: int = sock.getsockname()[1]
        return port


def prepare(data_dir: Path) -> Path:
    """Create the directory tree (0700 where it holds private data)."""
    data_dir = data_dir.resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    os.chmod(data_dir, 0o700)
    for sub in ("secrets", "state", "logs", "homes"):
        (data_dir / sub).mkdir(mode=0o700, exist_ok=True)
    # homes must be traversable by the per-user accounts that own their own 0700 home
    os.chmod(data_dir, 0o711)  # noqa: S103 - traverse only, no listing
    os.chmod(data_dir / "homes", 0o711)  # noqa: S103
    protect_private(data_dir)
    return data_dir


#: directories of the data dir that only labfleet (root) may read, with all they hold
PRIVATE_DIRS = ("secrets", "state", "logs", "backups")


def protect_private(data_dir: Path) -> list[str]:
    """Strip group/other access from every private file: the hub DB and its journals,
    the account store, secrets, state, logs and backups (0600 files, 0700 directories).

    The data dir is traversable (0711) so users reach their homes; any file in it
    that a tool created 0644 (JupyterHub creates ``jupyterhub.sqlite`` so) would be
    readable by every user's kernel. Run at every start and after the hub is up
    (SQLite gives later ``-wal``/``-journal`` files the database's mode). Returns
    the paths it repaired. Never follows symlinks; homes and shared folders are untouched.
    """
    fixed: list[str] = []

    def strip(path: str) -> None:
        mode = os.lstat(path).st_mode
        if not stat.S_ISLNK(mode) and mode & 0o077:
            os.chmod(path, stat.S_IMODE(mode) & ~0o077)
            fixed.append(path)

    for entry in os.scandir(data_dir):
        if entry.is_symlink():
            continue
        if entry.is_file():
            strip(entry.path)
        elif entry.is_dir() and entry.name in PRIVATE_DIRS:
            strip(entry.path)
            for root, dirs, files in os.walk(entry.path):
                for name in (*dirs, *files):
                    strip(os.path.join(root, name))
    return fixed


def internal_ports(data_dir: Path) -> tuple[int, int]:
    """(hub port, proxy API port): chosen once, then reused."""
    path = data_dir / "state" / "ports.json"
    try:
        saved = json.loads(path.read_text())
        return int(saved["hub"]), int(saved["proxy_api"])
    except (OSError, ValueError, KeyError):
        pass
    ports = {"hub": free_port(), "proxy_api": free_port()}
    path.write_text(json.dumps(ports))
    return ports["hub"], ports["proxy_api"]


def runtime_for(data_dir: Path, ip: str, port: int) -> Runtime:
    data_dir = prepare(data_dir)
    hub_port, proxy_api_port = internal_ports(data_dir)
    return Runtime(
        data_dir=data_dir,
        platform="local",
        ip=ip,
        port=port,
        hub_port=hub_port,
        proxy_api_port=proxy_api_port,
    )
