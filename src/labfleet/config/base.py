"""The base every config section derives from: unknown keys fail, values are frozen."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class Section(BaseModel):
    """A frozen, strict config section (typos in keys fail with their path)."""

    model_config = ConfigDict(extra="forbid", frozen=True, validate_default=True)
