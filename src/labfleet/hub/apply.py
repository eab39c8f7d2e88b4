"""Apply a settings mapping to a traitlets ``Config`` (the only effect in hub/)."""

from __future__ import annotations

from typing import Any

from labfleet.hub.settings import Settings


def apply_settings(c: Any, settings: Settings) -> None:
    for cls, traits in settings.items():
        section = c[cls]
        for name, value in traits.items():
            setattr(section, name, value)
