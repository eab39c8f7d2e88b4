"""The hub database's schema revision against the installed JupyterHub's alembic scripts."""

from __future__ import annotations

from functools import cache

from sqlalchemy import create_engine, inspect, text


@cache
def _script_directory() -> object:
    from alembic.script import ScriptDirectory
    from jupyterhub.dbutil import ALEMBIC_DIR

    return ScriptDirectory(ALEMBIC_DIR)


def head_revision() -> str:
    heads: tuple[str, ...] = _script_directory().get_heads()  # type: ignore[attr-defined]
    return heads[0]


def known_revisions() -> set[str]:
    return {rev.revision for rev in _script_directory().walk_revisions()}  # type: ignore[attr-defined]


def current_revision(db_url: str) -> str | None:
    """The stamped revision; None for an empty (never started) database."""
    engine = create_engine(db_url)
    try:
        with engine.connect() as conn:
            if "alembic_version" not in inspect(conn).get_table_names():
                return None
            row = conn.execute(text("SELECT version_num FROM alembic_version")).first()
            return str(row[0]) if row else None
    finally:
        engine.dispose()


def has_tables(db_url: str) -> bool:
    engine = create_engine(db_url)
    try:
        return bool(inspect(engine).get_table_names())
    finally:
        engine.dispose()
