"""A real spawner for policy tests: ProfileChoiceMixin over JupyterHub's SimpleLocalProcessSpawner.

It runs ``tiny_server.py`` and records which profile ``apply_profile`` got,
in a file the test reads, so "no server started" and "which profile was
applied" are both observable.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from jupyterhub.spawner import SimpleLocalProcessSpawner
from traitlets import Unicode

from labfleet.config.profiles import Profile
from labfleet.spawn.profile_form import ProfileChoiceMixin

TINY_SERVER = Path(__file__).resolve().parents[1] / "auth" / "tiny_server.py"


class PolicyTestSpawner(ProfileChoiceMixin, SimpleLocalProcessSpawner):  # type: ignore[misc]
    record_dir = Unicode(config=True)

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.cmd = [sys.executable, str(TINY_SERVER)]

    def apply_profile(self, profile: Profile) -> None:
        self.environment = {**self.environment, "LABFLEET_PROFILE": profile.slug}
        record = Path(self.record_dir) / f"{self.user.name}.log"
        with record.open("a") as handle:
            handle.write(profile.slug + "\n")

    async def stop(self, now: bool = False) -> None:
        if self.pid:
            await super().stop(now=now)
