"""Schema upgrades from the two previous JupyterHub majors, and one interrupted half-way.

Follows docs/operating.md "Upgrade": `labfleet db status`, `labfleet db upgrade` (or just
`labfleet up`, which runs it first), and after an interrupted upgrade
`labfleet db upgrade --rollback`.
"""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

import pytest

from labfleet.ops.archive import unpack
from labfleet.ops.schema import head_revision
from labfleet.secrets import ensure_secrets
from tests.ops import schema_fixtures as fx
from tests.ops.helpers import PASSWORD, add_user, cli, hub_api
from tests.support.client import HubUser
from tests.support.platform import Platform
from tests.support.postgres import postgres_server

pytestmark = pytest.mark.integration


def _old_data_dir(tmp_path: Path, revision: str) -> tuple[Path, fx.Fixture]:
    data = tmp_path / "data"
    data.mkdir(mode=0o700, parents=True)
    fixture = fx.build(f"sqlite:///{data / 'jupyterhub.sqlite'}", revision)
    assert fx.revision_of_sqlite(str(data / "jupyterhub.sqlite")) == revision
    return data, fixture


@pytest.mark.parametrize("major", sorted(fx.OLD_MAJORS))
def test_db_upgrade_from_previous_major(tmp_path: Path, major: str) -> None:
    revision = fx.OLD_MAJORS[major]
    data, _ = _old_data_dir(tmp_path, revision)
    before = cli("db", "status", "--data-dir", str(data))
    assert before.returncode == 1 and "behind" in before.stdout, before.stdout

    done = cli("db", "upgrade", "--data-dir", str(data))
    assert done.returncode == 0, done.stderr
    db = str(data / "jupyterhub.sqlite")
    assert fx.revision_of_sqlite(db) == head_revision()
    with sqlite3.connect(db) as conn:
        assert conn.execute("SELECT name FROM users").fetchall() == [(fx.USER,)]
    # the backup taken first holds the database as it was
    (archive,) = (data / "backups").glob(f"pre-upgrade-{revision}-*.tar.gz")
    manifest, members = unpack(archive.read_bytes())
    assert manifest.alembic_revision == revision and "db/jupyterhub.sqlite" in members
    after = cli("db", "status", "--data-dir", str(data))
    assert after.returncode == 0 and "current" in after.stdout
    # a second run has nothing to do and takes no second backup
    assert cli("db", "upgrade", "--data-dir", str(data)).returncode == 0
    assert len(list((data / "backups").iterdir())) == 1


def test_labfleet_up_upgrades_an_old_schema_first(make_platform, tmp_path: Path) -> None:
    data, fixture = _old_data_dir(tmp_path, fx.JUPYTERHUB_4)
    add_user(data, fx.USER)
    platform: Platform = make_platform("culling: {enabled: false}\n", data_dir=data)
    platform.start()
    assert "needs a schema upgrade" in platform.log()
    assert list((data / "backups").glob("pre-upgrade-*.tar.gz"))
    assert hub_api(platform.url, fixture.token, "/user").json()["name"] == fx.USER
    user = HubUser(platform.url, fx.USER)
    assert user.login(PASSWORD).status_code == 200
    user.close()


def test_interrupted_upgrade_refuses_to_start_then_rolls_back(
    make_platform, tmp_path: Path
) -> None:
    data, _ = _old_data_dir(tmp_path, fx.JUPYTERHUB_4)
    db = str(data / "jupyterhub.sqlite")
    fx.half_migrate_trap(db)

    failed = cli("db", "upgrade", "--data-dir", str(data))
    assert failed.returncode == 1
    assert "half-migrated" in failed.stderr and "--rollback" in failed.stderr, failed.stderr
    middle = fx.revision_of_sqlite(db)
    assert middle not in (fx.JUPYTERHUB_4, head_revision()), "stopped between revisions"
    state = cli("db", "status", "--data-dir", str(data))
    assert state.returncode == 1 and "interrupted" in state.stdout

    # the platform refuses to start on it, with the message, and no hub ever ran
    platform: Platform = make_platform("culling: {enabled: false}\n", data_dir=data)
    with pytest.raises(RuntimeError, match="half-migrated"):
        platform.start(timeout=60)
    assert not (data / "state" / "jupyterhub.pid").exists()

    back = cli("db", "upgrade", "--rollback", "--data-dir", str(data))
    assert back.returncode == 0, back.stderr
    assert fx.revision_of_sqlite(db) == fx.JUPYTERHUB_4
    assert cli("db", "status", "--data-dir", str(data)).stdout.count("behind") == 1


def test_postgres_upgrade_from_hub_environment(tmp_path: Path) -> None:
    """The Kubernetes init container's view: only the hub pod's variables, no arguments."""
    with postgres_server() as db_url:
        fixture = fx.build(db_url, fx.JUPYTERHUB_5)
        config = tmp_path / "labfleet.yaml"
        config.write_text("hub: {db_url: 'env:HUB_DB_URL'}\n")
        secrets = ensure_secrets(tmp_path / "elsewhere")
        env = {
            **os.environ,
            **secrets.to_env(),
            "LABFLEET_PLATFORM": "kubernetes",
            "LABFLEET_DATA_DIR": str(tmp_path / "pod-data"),
            "LABFLEET_CONFIG": str(config),
            "HUB_DB_URL": db_url,
        }
        (tmp_path / "pod-data").mkdir()
        done = cli("db", "upgrade", env=env)
        assert done.returncode == 0, done.stderr
        import sqlalchemy

        engine = sqlalchemy.create_engine(db_url)
        with engine.connect() as conn:
            rev = conn.execute(sqlalchemy.text("SELECT version_num FROM alembic_version"))
            assert rev.scalar() == head_revision()
            names = conn.execute(sqlalchemy.text("SELECT name FROM users")).fetchall()
            assert names == [(fx.USER,)]
        engine.dispose()
        (archive,) = (tmp_path / "pod-data" / "backups").glob("pre-upgrade-*.tar.gz")
        _, members = unpack(archive.read_bytes())
        assert "db/hub.pgdump" in members and "secrets/cookie_secret" in members
        assert fixture.token  # the token row survived: checked through the hub elsewhere


KILL_ROUNDS = int(os.environ.get("LABFLEET_UPGRADE_KILL_ROUNDS", "2"))


def test_upgrade_killed_at_random_moments_never_leaves_a_startable_half_schema(
    tmp_path: Path,
) -> None:
    """SIGKILL `labfleet db upgrade` at a random instant: the database is then either
    untouched (behind, no marker), done (current), or marked interrupted — and from each
    of those the runbook reaches the current schema."""
    import random
    import signal
    import subprocess
    import sys
    import time

    seen: set[str] = set()
    rng = random.Random(int(os.environ.get("LABFLEET_UPGRADE_KILL_SEED", "15")))
    for round_ in range(KILL_ROUNDS):
        data, _ = _old_data_dir(tmp_path / f"round{round_}", fx.JUPYTERHUB_4)
        proc = subprocess.Popen(
            [sys.executable, "-m", "labfleet.cli.main", "db", "upgrade", "--data-dir", str(data)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        # wait for the backup (the last step before the marker), then kill somewhere after it
        deadline = time.monotonic() + 60
        while not list((data / "backups").glob("*.tar.gz")) and proc.poll() is None:
            assert time.monotonic() < deadline
            time.sleep(0.005)
        time.sleep(rng.uniform(0, 0.4))
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        state = cli("db", "status", "--data-dir", str(data)).stdout
        kind = next(k for k in ("behind", "current", "interrupted") if f"state:    {k}" in state)
        seen.add(kind)
        db = str(data / "jupyterhub.sqlite")
        if kind == "behind":
            assert fx.revision_of_sqlite(db) == fx.JUPYTERHUB_4
        if kind == "interrupted":
            refused = cli("db", "upgrade", "--data-dir", str(data))
            assert refused.returncode == 1 and "half-migrated" in refused.stderr
            assert cli("db", "upgrade", "--rollback", "--data-dir", str(data)).returncode == 0
            assert fx.revision_of_sqlite(db) == fx.JUPYTERHUB_4
        done = cli("db", "upgrade", "--data-dir", str(data))
        assert done.returncode == 0, done.stderr
        assert fx.revision_of_sqlite(db) == head_revision()
    print(f"states seen after SIGKILL: {sorted(seen)}")
