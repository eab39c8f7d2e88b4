"""What happens to a removed member's home: archived (the default) or deleted.

A home is never left in place, because a new account of the same name would
get the same path and so the old files. ``archive`` moves it to
``<homes>/.removed/<slug>.removed-<UTC time>``: the ``.removed`` directory is
0700 and owned by the platform, so nobody but an admin reaches the files,
even a new member whose system account got the old uid. No valid user slug
starts with a dot, so the archive can never be anyone's home.
"""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path
from typing import Literal

from labfleet.naming import user_slug

HomeDisposal = Literal["archive", "delete"]
ARCHIVE_DIR = ".removed"


def home_of(homes_dir: Path, name: str) -> Path:
    return homes_dir / user_slug(name)


def archive_dir(homes_dir: Path) -> Path:
    return homes_dir / ARCHIVE_DIR


def dispose_home(homes_dir: Path, name: str, how: HomeDisposal = "archive") -> Path | None:
    """Archive or delete ``name``'s home; returns where it went (None: deleted or none)."""
    home = home_of(homes_dir, name)
    if not home.exists() and not home.is_symlink():
        return None
    if how == "delete":
        if home.is_symlink() or not home.is_dir():
            home.unlink()
        else:
            shutil.rmtree(home)
        return None
    target_dir = archive_dir(homes_dir)
    target_dir.mkdir(mode=0o700, exist_ok=True)
    os.chown(target_dir, os.getuid(), os.getgid())
    os.chmod(target_dir, 0o700)
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    target = target_dir / f"{home.name}.removed-{stamp}"
    suffix = 0
    while target.exists():
        suffix += 1
        target = target_dir / f"{home.name}.removed-{stamp}-{suffix}"
    os.rename(home, target)
    return target
