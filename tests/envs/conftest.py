"""Fixtures for managed environments: a data dir of one's own, its environments removed after.

Environments live under ``/opt/labfleet/envs/<platform tag>`` (root-owned, like
the provisioned server environment they are layered on), so these tests run as
root, as CI does. Each data dir is a new platform (a new tag); its folder
there is deleted at the end, whatever the test left.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from labfleet.envs.layout import platform_root
from tests.local.conftest import IS_ROOT

needs_root = pytest.mark.skipif(
    not IS_ROOT, reason="needs root: environments live under /opt/labfleet (CI runs as root)"
)
#: small pure-Python packages on the package index (and in the local one)
FIRST_PACKAGE = "tabulate"
SECOND_PACKAGE = "termcolor"


@pytest.fixture
def data_dir() -> Iterator[Path]:
    base = Path(tempfile.mkdtemp(prefix="labfleet-envs-", dir="/tmp"))
    base.chmod(0o711)
    data = base / "data"
    yield data
    shutil.rmtree(platform_root(data), ignore_errors=True)
    shutil.rmtree(base, ignore_errors=True)
