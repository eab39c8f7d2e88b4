"""PostgreSQL through its own tools: ``pg_dump`` (custom format) and ``pg_restore``.

The password never goes on a command line (visible in ``ps``): it travels in ``PGPASSWORD``.
"""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
from pathlib import Path

from sqlalchemy import create_engine, inspect
from sqlalchemy.engine import make_url


class PostgresError(Exception):
    pass


def _tool(name: str) -> str:
    packaged = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    found = shutil.which(name) or (packaged[-1] if packaged else None)
    if not found:
        raise PostgresError(f"{name} is not installed (Debian: apt-get install postgresql-client)")
    return found


def libpq_args(url: str) -> tuple[str, dict[str, str]]:
    """(a libpq connection URI without password, environment with PGPASSWORD)."""
    parsed = make_url(url)
    env = dict(os.environ)
    if parsed.password:
        env["PGPASSWORD"] = str(parsed.password)
    plain = parsed.set(drivername="postgresql", password=None)
    return plain.render_as_string(hide_password=False), env


def dump(url: str, out: Path) -> None:
    uri, env = libpq_args(url)
    result = subprocess.run(
        [_tool("pg_dump"), "--format=custom", "--no-owner", "--file", str(out), "--dbname", uri],
        env=env,
        capture_output=True,
        text=True,
        timeout=3600,
    )
    if result.returncode != 0:
        raise PostgresError(f"pg_dump failed: {result.stderr.strip()[-2000:]}")


def restore(url: str, dump_file: Path, clean: bool = False) -> None:
    uri, env = libpq_args(url)
    argv = [_tool("pg_restore"), "--no-owner", "--exit-on-error", "--single-transaction"]
    if clean:
        argv += ["--clean", "--if-exists"]
    result = subprocess.run(
        [*argv, "--dbname", uri, str(dump_file)],
        env=env,
        capture_output=True,
        text=True,
        timeout=3600,
    )
    if result.returncode != 0:
        raise PostgresError(f"pg_restore failed: {result.stderr.strip()[-2000:]}")


def table_names(url: str) -> list[str]:
    engine = create_engine(url)
    try:
        return sorted(inspect(engine).get_table_names())
    finally:
        engine.dispose()
