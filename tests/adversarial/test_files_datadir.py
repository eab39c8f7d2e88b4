"""Every file in the data dir that a user must not read is 0600/0700, repaired at every start.

The data dir is 0711 (users traverse it to reach their homes), so a 0644
``jupyterhub.sqlite`` is readable by any user who knows its name: usernames,
admin flags, token hashes, OAuth codes. The end-to-end check (from a user's
kernel) is in test_isolation_boundary.py; this one covers every kind of file.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from labfleet.up.datadir import prepare, protect_private


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.lstat().st_mode)


def test_private_files_are_repaired_and_homes_and_shared_folders_are_not(tmp_path: Path) -> None:
    data = tmp_path / "data"
    prepare(data)
    private = [
        data / "jupyterhub.sqlite",
        data / "jupyterhub.sqlite-wal",
        data / "jupyterhub.sqlite-shm",
        data / "jupyterhub.sqlite-journal",
        data / "accounts.sqlite",
        data / "secrets" / "cookie_secret",
        data / "state" / "servers" / "alice.pid",
        data / "logs" / "hub.log",
        data / "backups" / "x.tar.gz",
    ]
    for path in private:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("private")
        path.chmod(0o644)
    for sub in ("state/servers", "backups"):
        (data / sub).chmod(0o755)
    shared = data / "shared" / "data"
    shared.mkdir(parents=True)
    shared.chmod(0o755)
    home = data / "homes" / "alice"
    home.mkdir()
    (home / "notes.txt").write_text("mine")
    (home / "notes.txt").chmod(0o644)
    outside = tmp_path / "outside.txt"
    outside.write_text("x")
    outside.chmod(0o644)
    os.symlink(outside, data / "link-out")

    prepare(data)  # every start

    assert {str(p): _mode(p) for p in private} == {str(p): 0o600 for p in private}
    for sub in ("secrets", "state", "state/servers", "logs", "backups"):
        assert _mode(data / sub) == 0o700, sub
    assert _mode(data) == 0o711 and _mode(data / "homes") == 0o711
    assert _mode(shared) == 0o755 and _mode(home / "notes.txt") == 0o644
    assert _mode(outside) == 0o644, "a symlink is never followed"
    assert protect_private(data) == [], "nothing left to repair"
