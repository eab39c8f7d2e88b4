"""One running platform for the whole chaos suite: starting one costs more than all its kills."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.conftest import make_platform, open_data_dir  # noqa: F401 - fixtures
from tests.integration.test_embedded_flow import add_user
from tests.support.platform import Platform

#: the members every chaos test logs in as
MEMBERS = ("cora", "dan")


@pytest.fixture(scope="session")
def chaos_platform() -> Iterator[Platform]:
    parent = Path(tempfile.mkdtemp(prefix="labfleet-chaos-"))
    parent.chmod(0o711)  # servers isolated as their own accounts reach their homes
    config = parent / "labfleet.yaml"
    # culling on (its service is one of the victims), but never culling during the test
    config.write_text("culling: {enabled: true, timeout: 3600, every: 300}\n")
    running = Platform(data_dir=parent / "data", config=config)
    try:
        running.start(timeout=180)
        for name in MEMBERS:
            add_user(running.data_dir, name)
        yield running
    finally:
        running.stop()
        if os.environ.get("LABFLEET_CHAOS_KEEP"):  # its logs, to read after a failure
            print(f"chaos platform's data dir kept: {parent}")
        else:
            shutil.rmtree(parent, ignore_errors=True)
