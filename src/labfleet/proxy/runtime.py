"""Process-wide runtime facts of the proxy: its logger, log set-up and event loop.

The bottom floor of the package: every other module may import it, it
imports nothing of ours. It exists so that ``main`` and ``workers`` (and the
data plane) share logging and the loop policy without importing each other.
"""

from __future__ import annotations

import asyncio
import logging
import sys

log = logging.getLogger("labfleet.proxy")

_LEVELS = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warn": logging.WARNING,
    "warning": logging.WARNING,
    "error": logging.ERROR,
    "critical": logging.CRITICAL,
}


def level(name: str) -> int:
    return _LEVELS.get(name.lower(), logging.INFO)


def setup_logging(level_name: str) -> None:
    logging.basicConfig(
        level=level(level_name),
        format="%(asctime)s %(levelname).1s labfleet-proxy[%(process)d] %(message)s",
        stream=sys.stderr,
    )


def install_loop() -> None:
    """uvloop when available: the data plane is callback-bound."""
    try:
        import uvloop
    except ImportError:
        return
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
