"""Server profiles: what a user may start (image/environment, CPU, memory, GPUs)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from pydantic import Field, field_validator

from labfleet.config.base import Section
from labfleet.config.units import Size

SLUG_PATTERN = r"^[a-z][a-z0-9-]{0,39}$"
#: a managed environment's name (``labfleet envs create NAME``); anything else is a path prefix
ENVIRONMENT_NAME_PATTERN = SLUG_PATTERN
#: below this a JupyterLab server cannot even start (it needs ~100 MiB before any kernel)
MIN_SERVER_MEMORY = 128 * 2**20


class Profile(Section):
    """One choice on the spawn form.

    Resource fields are limits; ``*_guarantee`` are requests (Kubernetes) and
    are ignored on one machine, where only limits can be enforced.
    """

    slug: str = Field(pattern=SLUG_PATTERN, description="Stable id used in the API and URLs.")
    display_name: str = Field(min_length=1, max_length=200)
    description: str = ""
    default: bool = False
    cpu: float | None = Field(default=None, gt=0, description="CPU limit in cores.")
    cpu_guarantee: float | None = Field(default=None, gt=0)
    memory: Size | None = Field(default=None, description="Memory limit, e.g. '4G'.")
    memory_guarantee: Size | None = None
    gpus: int = Field(default=0, ge=0, le=16, description="GPUs assigned to the server.")
    image: str | None = Field(default=None, description="Container image (Kubernetes).")
    environment: str | None = Field(
        default=None,
        description=(
            "A managed environment's name (labfleet envs create NAME), or the prefix path "
            "of a local Python environment whose jupyterhub-singleuser is run."
        ),
    )
    allowed_users: list[str] | None = Field(
        default=None, description="Only these users may start it (None: everyone)."
    )
    allowed_groups: list[str] | None = Field(
        default=None, description="Only members of these groups may start it."
    )
    admin_only: bool = False

    @field_validator("image")
    @classmethod
    def _image_has_no_whitespace(cls, value: str | None) -> str | None:
        if value is not None and (not value or any(ch.isspace() for ch in value)):
            raise ValueError(f"{value!r} is not an image reference")
        return value

    @field_validator("memory")
    @classmethod
    def _memory_can_run_a_server(cls, value: int | None) -> int | None:
        if value is not None and value < MIN_SERVER_MEMORY:
            raise ValueError(
                f"{value} bytes is too little for a server (JupyterLab needs at least 128Mi "
                "before any kernel runs); write e.g. '2G'"
            )
        return value


@dataclass(frozen=True)
class Machine:
    """What one machine offers servers (found by ``up.status.machine_facts``)."""

    cpus: int
    memory: int  # bytes
    gpus: int
    #: names of the platform's managed environments (``labfleet envs list``)
    environments: frozenset[str] = frozenset()


def is_environment_name(value: str) -> bool:
    """Whether a profile's ``environment`` names a managed environment (else: a prefix path)."""
    return re.fullmatch(ENVIRONMENT_NAME_PATTERN, value) is not None


def machine_problems(profiles: list[Profile], machine: Machine) -> tuple[list[str], list[str]]:
    """(errors that cannot work here, warnings) for the embedded platform.

    Pure but for one look at the file system: whether each environment exists.
    """
    errors: list[str] = []
    warnings: list[str] = []
    for index, profile in enumerate(profiles):
        where = f"profiles[{index}] ({profile.slug})"
        if profile.environment and is_environment_name(profile.environment):
            if profile.environment not in machine.environments:
                have = ", ".join(sorted(machine.environments)) or "none yet"
                errors.append(
                    f"{where}.environment: no managed environment {profile.environment!r} on "
                    f"this platform (have: {have}); create it with: "
                    f"labfleet envs create {profile.environment}"
                )
        elif profile.environment and not Path(profile.environment).is_dir():
            errors.append(
                f"{where}.environment: {profile.environment} does not exist on this machine"
            )
        if profile.cpu and profile.cpu > machine.cpus:
            warnings.append(
                f"{where} asks for {profile.cpu:g} CPUs; this machine has {machine.cpus}"
            )
        if profile.memory and profile.memory > machine.memory:
            warnings.append(
                f"{where} asks for {profile.memory / 2**30:.1f} GiB of memory; "
                f"this machine has {machine.memory / 2**30:.1f} GiB"
            )
        if profile.gpus > machine.gpus:
            warnings.append(
                f"{where} asks for {profile.gpus} GPU(s) but {machine.gpus} were found on this "
                "machine: it is hidden from the spawn form and its servers are refused"
            )
    return errors, warnings


def default_profiles() -> list[Profile]:
    return [Profile(slug="default", display_name="Default", default=True)]
