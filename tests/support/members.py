"""A real platform whose password accounts were added with the CLI before it started.

Many end-to-end tests need the same thing: write a labfleet.yaml, add a few
members (some admins) with ``labfleet users add --password-stdin``, run
``labfleet up``, and stop it by pid afterwards. One helper, so each test says
only which config and which members.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from tests.support.platform import Platform, labfleet, write_config


@dataclass(frozen=True)
class Member:
    name: str
    password: str
    admin: bool = False


def add_member(data_dir: Path, member: Member) -> None:
    """``labfleet users add`` for one member (works on a running platform's data dir too)."""
    extra = ("--admin",) if member.admin else ()
    result = labfleet(
        "users",
        "add",
        member.name,
        "--password-stdin",
        *extra,
        input=member.password + "\n",
        data_dir=data_dir,
    )
    assert result.returncode == 0, result.stderr


@contextlib.contextmanager
def platform_with_members(
    base: Path, config_text: str, members: Iterable[Member]
) -> Iterator[Platform]:
    """Config in ``base``, members added, the platform started; stopped (by pid) on exit."""
    config = write_config(base / "labfleet.yaml", config_text)
    platform = Platform(data_dir=base / "data", config=config)
    for member in members:
        add_member(platform.data_dir, member)
    platform.start()
    try:
        yield platform
    finally:
        platform.stop()
