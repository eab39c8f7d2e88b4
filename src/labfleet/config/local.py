"""The ``local:`` section: how users are kept apart on one machine.

Read only by ``labfleet up`` (the LocalSpawner settings and the start-up
banner); Kubernetes ignores it. Every default is safe: isolation and limits
switch themselves on when the machine allows it (``auto``) and the banner
says plainly when it does not.
"""

from __future__ import annotations

import re
from typing import Literal

from pydantic import Field, field_validator

from labfleet.config.base import Section
from labfleet.config.units import Duration, Size

#: NVIDIA device ids: an index ("0"), a full-GPU UUID ("GPU-…") or a MIG UUID
#: ("MIG-…", including the older "MIG-GPU-<uuid>/<gi>/<ci>" form).
_DEVICE_ID = re.compile(r"\d{1,3}|(GPU|MIG)-[A-Za-z0-9/-]{1,120}")

Isolation = Literal["auto", "none", "system-users"]
LimitsBackendName = Literal["auto", "v1", "v2", "none"]
GpuMode = Literal["exclusive", "shared"]


class SharedFolders(Section):
    """TLJH-style shared folders, linked into every home.

    Relative paths are inside the data directory. ``null`` switches a folder off.
    """

    data: str | None = Field(
        default="shared/data",
        description="Read-only for users (owned by root, 0755); linked as ~/data.",
    )
    scratch: str | None = Field(
        default="shared/scratch",
        description="Writable by every user, sticky (1777): files can be removed only "
        "by their owner; linked as ~/scratch.",
    )

    @field_validator("data", "scratch")
    @classmethod
    def _plain_path(cls, value: str | None) -> str | None:
        if value is None:
            return None
        if not value.strip() or value != value.strip() or "\x00" in value or "\n" in value:
            raise ValueError(f"{value!r} is not a usable path")
        if ".." in value.split("/"):
            raise ValueError(f"{value!r}: '..' is not allowed in shared folder paths")
        return value


class GpuSection(Section):
    """How the GPUs of this machine are handed to servers (profiles ask with ``gpus: N``)."""

    mode: GpuMode = Field(
        default="exclusive",
        description="exclusive: a GPU belongs to one server at a time; "
        "shared: several servers share GPUs (least-loaded first).",
    )
    devices: list[str] | None = Field(
        default=None,
        description="Use these device ids (index, GPU-… or MIG-… UUID) instead of "
        "detecting them with NVML / nvidia-smi.",
    )
    memory_fraction: float | None = Field(
        default=None,
        gt=0,
        le=1,
        description="Per-process share of a GPU's memory that frameworks should use "
        "(XLA_PYTHON_CLIENT_MEM_FRACTION, LABFLEET_GPU_MEMORY_FRACTION); cooperative, "
        "not enforced by the driver.",
    )
    wait: Duration = Field(
        default=30,
        description="exclusive mode: how long a spawn waits for a GPU to become free "
        "before it is refused with a clear message (0: refuse at once).",
    )

    @field_validator("devices")
    @classmethod
    def _device_ids(cls, value: list[str] | None) -> list[str] | None:
        if value is None:
            return None
        seen: set[str] = set()
        for device in value:
            if not _DEVICE_ID.fullmatch(device):
                raise ValueError(
                    f"{device!r} is not a GPU id; use an index ('0'), 'GPU-<uuid>' or 'MIG-<uuid>'"
                )
            if device in seen:
                raise ValueError(f"the GPU {device!r} is listed twice")
            seen.add(device)
        return value


class LocalSection(Section):
    """``local:`` in labfleet.yaml."""

    isolation: Isolation = Field(
        default="auto",
        description="system-users: one system account per user (needs root); "
        "none: every server runs as the account running labfleet; auto: system-users when root.",
    )
    limits: LimitsBackendName = Field(
        default="auto",
        description="cgroup layout for CPU/memory/pids limits: v2 (unified), v1 (legacy/hybrid), "
        "none (not enforced), auto (detect).",
    )
    pids_max: int = Field(
        default=1024,
        ge=16,
        le=4_194_304,
        description="Most processes and threads one server (with its kernels) may run.",
    )
    kernel_preload: bool = Field(
        default=True,
        description="Fork each server's default Python kernels from a per-server process that "
        "has already imported ipykernel (a kernel starts in a fork, not a fresh interpreter); "
        "false: every kernel starts a fresh interpreter.",
    )
    min_free_space: Size = Field(
        default=2**30,
        description="Below this much free space on the data directory's disk, the start-up "
        "banner and `labfleet status` warn (a full disk stops logins, spawns and saves). "
        "0 switches the warning off.",
    )
    shared: SharedFolders = Field(default_factory=SharedFolders)
    gpus: GpuSection = Field(default_factory=GpuSection)
