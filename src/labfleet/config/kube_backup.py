"""``kubernetes.backup``: a CronJob that runs ``labfleet backup`` on a schedule.

The archive is the same one ``labfleet backup`` writes by hand (hub database,
accounts, secrets, config; users' homes are not in it), written to a
PersistentVolumeClaim and pruned to the newest ``keep``. Restoring is the
runbook in docs/kubernetes.md.
"""

from __future__ import annotations

import re

from pydantic import Field, field_validator

from labfleet.config.base import Section
from labfleet.config.units import Size

_K8S_NAME = r"^[a-z0-9]([a-z0-9.-]{0,251}[a-z0-9])?$"
_CRON_FIELD = r"(\*|\d+(-\d+)?)(/\d+)?(,(\*|\d+(-\d+)?)(/\d+)?)*"
_CRON_MACROS = ("@hourly", "@daily", "@midnight", "@weekly", "@monthly", "@yearly", "@annually")


class BackupPassphrase(Section):
    """Encrypt each archive with the passphrase held in one key of a Secret."""

    secret: str = Field(pattern=_K8S_NAME)
    key: str = Field(default="passphrase", pattern=r"^[-._a-zA-Z0-9]+$")


class BackupSection(Section):
    """Scheduled backups of the hub (off unless this section is present)."""

    schedule: str = Field(
        default="0 3 * * *",
        description="Cron schedule in the cluster's time zone (default: 03:00 every day).",
    )
    time_zone: str | None = Field(
        default=None, pattern=r"^[A-Za-z_]+(/[A-Za-z0-9_+-]+)*$", examples=["Europe/Zurich"]
    )
    keep: int = Field(default=14, ge=1, le=1000, description="Archives kept; older are deleted.")
    claim: str | None = Field(
        default=None,
        pattern=_K8S_NAME,
        description="An existing PersistentVolumeClaim for the archives; None: labfleet "
        "renders <name>-backups of 'size' (kept on destroy unless --delete-user-data).",
    )
    size: Size = Field(default=5 * 2**30, description="Size of the rendered claim.")
    storage_class: str | None = None
    passphrase: BackupPassphrase | None = Field(
        default=None, description="Encrypt archives (recommended: they hold the hub's secrets)."
    )
    image: str | None = Field(
        default=None,
        description="Image with labfleet (and pg_dump for a PostgreSQL hub); None: the hub image.",
    )

    @field_validator("schedule")
    @classmethod
    def _cron(cls, value: str) -> str:
        fields = value.split()
        if value in _CRON_MACROS or (
            len(fields) == 5 and all(re.fullmatch(_CRON_FIELD, f) for f in fields)
        ):
            return value
        raise ValueError(
            f"{value!r} is not a cron schedule: five fields (minute hour day month weekday), "
            "e.g. '0 3 * * *', or @daily"
        )
