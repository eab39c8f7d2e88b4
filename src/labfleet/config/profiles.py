"""Server profiles: what a user may start (image/environment, CPU, memory, GPUs)."""

from __future__ import annotations

from pydantic import Field, field_validator

from labfleet.config.base import Section
from labfleet.config.units import Size

SLUG_PATTERN = r"^[a-z][a-z0-9-]{0,39}$"


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
        description="Local Python environment prefix whose jupyterhub-singleuser is run.",
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


def default_profiles() -> list[Profile]:
    return [Profile(slug="default", display_name="Default", default=True)]
