"""Fixtures for day-two operations: the real platform (`labfleet up`) and the labfleet CLI."""

from __future__ import annotations

from tests.integration.conftest import make_platform  # noqa: F401 - re-exported fixture
