"""The hub's log file (``logs/hub.log``), shown live on the supervisor's terminal too.

The hub (and the proxy and services it starts, which inherit its output)
writes straight into the file rather than into a pipe to the supervisor, so
a supervisor that dies never takes the hub's output — or the hub — with it.
A small thread copies new lines to the terminal; ``labfleet logs hub`` reads
the same file.
"""

from __future__ import annotations

import os
import sys
import threading
from pathlib import Path
from typing import BinaryIO

MAX_BYTES = 50 * 2**20  # rotate at start-up beyond this: one previous file is kept


def hub_log_path(logs_dir: Path) -> Path:
    return logs_dir / "hub.log"


def open_hub_log(logs_dir: Path) -> BinaryIO:
    path = hub_log_path(logs_dir)
    logs_dir.mkdir(parents=True, exist_ok=True)
    try:
        if path.stat().st_size > MAX_BYTES:
            os.replace(path, path.with_suffix(".log.1"))
    except OSError:
        pass
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    return os.fdopen(fd, "ab", buffering=0)


def follow_to_terminal(path: Path, stop: threading.Event, start: int) -> threading.Thread:
    """Copy what is appended to ``path`` after byte ``start`` to stderr until ``stop``."""

    def run() -> None:
        try:
            handle = path.open("rb")
        except OSError:
            return
        with handle:
            handle.seek(start)
            while True:
                chunk = handle.read(65536)
                if chunk:
                    try:
                        sys.stderr.buffer.write(chunk)
                        sys.stderr.buffer.flush()
                    except (OSError, ValueError):
                        return
                    continue
                if stop.wait(0.1):
                    rest = handle.read()
                    if rest:
                        try:
                            sys.stderr.buffer.write(rest)
                            sys.stderr.buffer.flush()
                        except (OSError, ValueError):
                            pass
                    return

    thread = threading.Thread(target=run, name="hub-log", daemon=True)
    thread.start()
    return thread
