"""Hub databases at older JupyterHub schemas, built with JupyterHub's own alembic scripts.

A database is created at the installed head by JupyterHub's ORM, given a user and an API
token, then migrated *down* with ``alembic downgrade`` to the last revision of an older
JupyterHub major — the schema an operator upgrading from that major really has.
"""

from __future__ import annotations

import os
import sqlite3
import tempfile
from dataclasses import dataclass

#: the last schema revision each older JupyterHub major shipped
JUPYTERHUB_4 = "3c2384c5aae1"  # 4.x: services.from_config
JUPYTERHUB_5 = "4621fec11365"  # 5.x: roles.managed_by_auth
OLD_MAJORS = {"jupyterhub-4": JUPYTERHUB_4, "jupyterhub-5": JUPYTERHUB_5}
USER = "old-user"


@dataclass(frozen=True)
class Fixture:
    url: str
    revision: str
    token: str


def _alembic_config(url: str, tmp: str) -> object:
    import alembic.config
    from jupyterhub.dbutil import write_alembic_ini

    ini = os.path.join(tmp, "alembic.ini")
    write_alembic_ini(ini, url)
    return alembic.config.Config(ini)


def build(url: str, revision: str) -> Fixture:
    import alembic.command
    from jupyterhub import orm

    db = orm.new_session_factory(url)()
    db.add(orm.OAuthClient(identifier="jupyterhub"))
    user = orm.User(name=USER)
    db.add(user)
    db.commit()
    token = user.new_api_token(note="made before the upgrade")
    db.commit()
    db.close()
    db.get_bind().dispose()
    with tempfile.TemporaryDirectory() as tmp:
        alembic.command.downgrade(_alembic_config(url, tmp), revision)
    return Fixture(url, revision, token)


def half_migrate_trap(sqlite_path: str) -> None:
    """Make the PKCE step (JupyterHub 6) fail after its first column is added.

    The migration from 4.x then stops inside a step: earlier steps committed, one column of
    the failing step already there — the half-migrated schema an interrupted run leaves.
    """
    conn = sqlite3.connect(sqlite_path)
    conn.execute("ALTER TABLE oauth_codes ADD COLUMN code_challenge_method VARCHAR(64)")
    conn.commit()
    conn.close()


def revision_of_sqlite(path: str) -> str:
    conn = sqlite3.connect(path)
    try:
        return str(conn.execute("SELECT version_num FROM alembic_version").fetchone()[0])
    finally:
        conn.close()
