"""The hub on a real PostgreSQL server: users, servers and tokens survive a restart,
and the database holds only token hashes (BAD_INPUTS 51)."""

from __future__ import annotations

import psycopg
import pytest

from tests.integration.test_embedded_flow import PASSWORD, add_user
from tests.support.client import HubUser
from tests.support.platform import Platform
from tests.support.postgres import postgres_server

pytestmark = pytest.mark.integration


def test_hub_on_postgresql(make_platform) -> None:
    with postgres_server() as db_url:
        platform: Platform = make_platform(
            f"hub: {{db_url: '{db_url}'}}\nculling: {{enabled: false}}\n"
        )
        try:
            _exercise(platform, db_url)
        finally:
            platform.stop()  # while PostgreSQL still runs: a hub without its DB hangs on exit


def _exercise(platform: Platform, db_url: str) -> None:
    platform.start()
    add_user(platform.data_dir, "dora")
    dora = HubUser(platform.url, "dora")
    assert dora.login(PASSWORD).status_code == 200
    dora.start_server().raise_for_status()
    dora.wait_ready()
    token = dora.new_token()
    assert dora.run_code(token, "print(6*7)").strip() == "42"

    with psycopg.connect(db_url) as conn, conn.cursor() as cur:
        cur.execute("SELECT name FROM users")
        assert ("dora",) in cur.fetchall()
        cur.execute("SELECT * FROM api_tokens")
        rows = cur.fetchall()
    assert rows and all(token not in map(str, row) for row in rows), "only hashes stored"
    assert not (platform.data_dir / "jupyterhub.sqlite").exists()

    assert platform.stop() == 0
    platform.start()
    again = HubUser(platform.url, "dora")
    again.login(PASSWORD)
    again.wait_ready(timeout=60)  # resumed from the PostgreSQL-backed state
    assert again.run_code(token, "print('still', 6*7)").strip() == "still 42"
    dora.close()
    again.close()
