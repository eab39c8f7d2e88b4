"""``state/components.json``: what each supervised component is doing, and why.

The supervisor writes one entry per component (``state``: starting, up,
restarting, down, stopped; ``reason`` in plain words; ``since``) with an atomic
replace, so ``labfleet status`` can say what is down and why even when the hub
itself is not answering.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from pathlib import Path
from typing import Any

FILE = "components.json"


def read(state_dir: Path) -> dict[str, dict[str, Any]]:
    """The recorded components; empty when none were recorded or the file is unreadable."""
    try:
        data = json.loads((state_dir / FILE).read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def write(state_dir: Path, name: str, state: str, reason: str) -> None:
    """Record ``name``'s state; a full or read-only disk never stops the supervisor."""
    data = read(state_dir)
    data[name] = {"state": state, "reason": reason, "since": time.time()}
    tmp = state_dir / f".{FILE}.{os.getpid()}"
    with contextlib.suppress(OSError):
        tmp.write_text(json.dumps(data, indent=1, sort_keys=True) + "\n")
        tmp.replace(state_dir / FILE)


def down_lines(state_dir: Path) -> list[str]:
    """Plain lines for ``labfleet status``: components not up, with the reason."""
    return [
        f"{name}: {entry.get('state')} ({entry.get('reason')})"
        for name, entry in sorted(read(state_dir).items())
        if isinstance(entry, dict) and entry.get("state") in ("down", "restarting", "starting")
    ]
