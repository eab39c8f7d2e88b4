"""``labfleet db upgrade`` reports a missing PostgreSQL tool in plain words (issue 13/15).

The Kubernetes init container runs it before every hub start; a hub image without
``pg_dump`` used to end that container with a Python traceback.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import pytest

from labfleet.cli import db
from labfleet.ops import pg


def test_missing_pg_dump_is_a_plain_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def no_tool(*_: Any, **__: Any) -> Any:
        raise pg.PostgresError(
            "pg_dump is not installed (Debian: apt-get install postgresql-client)"
        )

    monkeypatch.setattr("labfleet.ops.migrate.upgrade", no_tool)
    monkeypatch.setattr(db, "_locate", lambda args: object())
    args = argparse.Namespace(data_dir=tmp_path, config=None, rollback=False, archive=None)
    assert db.run_upgrade(args) == db.EXIT_FAILURE
    err = capsys.readouterr().err
    assert "error: pg_dump is not installed" in err and "Traceback" not in err
