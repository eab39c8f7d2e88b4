"""The real platform's fixture, shared with tests/integration."""

from tests.integration.conftest import make_platform

__all__ = ["make_platform"]
