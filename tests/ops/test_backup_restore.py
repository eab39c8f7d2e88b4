"""Backup while the platform works, restore into an empty directory, log the same people in.

The runbook steps of docs/operating.md ("Back up and restore") in the order an operator
runs them: `labfleet backup` against the running platform, then on the new machine
`labfleet restore` into an empty data directory and `labfleet up` on it.
"""

from __future__ import annotations

import threading
from pathlib import Path

import psycopg
import pytest

from labfleet.secrets import ensure_secrets
from tests.ops.helpers import PASSWORD, add_user, cli, hub_api, supervisor_token
from tests.support.client import HubUser
from tests.support.platform import Platform
from tests.support.postgres import postgres_server

pytestmark = pytest.mark.integration

CONFIG = "culling: {enabled: false}\n"


def _burst(platform: Platform, names: list[str], errors: list[str]) -> list[threading.Thread]:
    def one(name: str) -> None:
        user = HubUser(platform.url, name)
        try:
            if user.login(PASSWORD).status_code != 200:
                errors.append(f"{name}: login failed")
                return
            user.start_server().raise_for_status()
            user.wait_ready(timeout=120)
        except Exception as exc:  # collected and asserted by the test
            errors.append(f"{name}: {exc!r}")
        finally:
            user.close()

    threads = [threading.Thread(target=one, args=(n,)) for n in names]
    for thread in threads:
        thread.start()
    return threads


def test_backup_during_spawn_burst_then_restore_serves_same_users(
    make_platform, tmp_path: Path
) -> None:
    platform: Platform = make_platform(CONFIG)
    platform.start()
    names = ["ann", "bob", "cyd", "dee"]
    for name in names:
        add_user(platform.data_dir, name)
    for name in names:  # each logs in once: the hub knows them all before the burst
        user = HubUser(platform.url, name)
        assert user.login(PASSWORD).status_code == 200
        if name == "ann":
            old_token = user.new_token()
        user.close()

    errors: list[str] = []
    threads = _burst(platform, names, errors)
    archive = tmp_path / "during-burst.tar.gz"
    made = cli(
        "backup",
        "--data-dir",
        str(platform.data_dir),
        "-c",
        str(platform.config),
        "-o",
        str(archive),
    )
    for thread in threads:
        thread.join(180)
    assert made.returncode == 0, made.stderr
    assert not errors, errors
    # the backup did not disturb the platform: every server came up, and a second backup
    # taken with all of them running is just as good
    second = cli(
        "backup", "--data-dir", str(platform.data_dir), "-o", str(tmp_path / "all-up.tar.gz")
    )
    assert second.returncode == 0, second.stderr
    assert platform.stop() == 0  # the old machine is gone

    restored_dir = tmp_path / "restored"
    done = cli("restore", str(archive), "--data-dir", str(restored_dir))
    assert done.returncode == 0, done.stderr
    restored_config = restored_dir / "labfleet.yaml"
    assert restored_config.read_text() == platform.config.read_text()
    assert oct((restored_dir / "secrets" / "cookie_secret").stat().st_mode & 0o777) == "0o600"

    again = Platform(data_dir=restored_dir, config=restored_config)
    try:
        again.start()
        listing = hub_api(again.url, supervisor_token(restored_dir), "/users")
        listing.raise_for_status()
        assert set(names) <= {u["name"] for u in listing.json()}
        # the old API token still works, and still belongs to ann
        whoami = hub_api(again.url, old_token, "/user")
        assert whoami.status_code == 200 and whoami.json()["name"] == "ann"
        # the account store came back: the same password logs the same person in
        ann2 = HubUser(again.url, "ann")
        page = ann2.login(PASSWORD)
        assert page.status_code == 200 and "/hub/login" not in str(page.url)
        ann2.start_server().raise_for_status()
        ann2.wait_ready(timeout=120)
        assert ann2.run_code(old_token, "print(6*7)").strip() == "42"
        ann2.close()
        for name in names[1:]:
            other = HubUser(again.url, name)
            assert other.login(PASSWORD).status_code == 200, name
            other.close()
    finally:
        again.stop()


def test_corrupted_archive_is_refused_and_leaves_nothing(tmp_path: Path) -> None:
    data = tmp_path / "data"
    add_user(data, "eve")
    archive = tmp_path / "good.tar.gz"
    assert cli("backup", "--data-dir", str(data), "-o", str(archive)).returncode == 0
    blob = bytearray(archive.read_bytes())
    variants = {
        "flipped": bytes(blob[:200]) + bytes([blob[200] ^ 0xFF]) + bytes(blob[201:]),
        "truncated": bytes(blob[: len(blob) // 2]),
        "empty": b"",
        "not-a-backup": b"hello, I am not a tarball\n" * 10,
    }
    for label, content in variants.items():
        bad = tmp_path / f"{label}.tar.gz"
        bad.write_bytes(content)
        target = tmp_path / f"target-{label}"
        result = cli("restore", str(bad), "--data-dir", str(target))
        assert result.returncode != 0, label
        assert "nothing was restored" in result.stderr, (label, result.stderr)
        assert not target.exists(), label
        assert not list(tmp_path.glob(f".target-{label}*")), f"{label}: staging left behind"
    # an existing empty target stays (empty), a non-empty one is refused untouched
    empty = tmp_path / "empty"
    empty.mkdir()
    assert cli("restore", str(tmp_path / "flipped.tar.gz"), "--data-dir", str(empty)).returncode
    assert list(empty.iterdir()) == []
    assert cli("restore", str(archive), "--data-dir", str(data)).returncode != 0
    assert cli("restore", str(archive), "--data-dir", str(empty)).returncode == 0


def test_encrypted_backup_needs_its_passphrase(tmp_path: Path) -> None:
    data = tmp_path / "data"
    add_user(data, "fay")
    ensure_secrets(data / "secrets")
    phrase = tmp_path / "phrase"
    phrase.write_text("a long passphrase nobody guesses\n")
    wrong = tmp_path / "wrong"
    wrong.write_text("something else\n")
    archive = tmp_path / "enc.bak"
    made = cli(
        "backup", "--data-dir", str(data), "-o", str(archive), "--passphrase-file", str(phrase)
    )
    assert made.returncode == 0, made.stderr
    secret = (data / "secrets" / "cookie_secret").read_bytes().strip()
    assert secret not in archive.read_bytes() and b"accounts" not in archive.read_bytes()
    for extra in ([], ["--passphrase-file", str(wrong)]):
        target = tmp_path / f"t{len(extra)}"
        result = cli("restore", str(archive), "--data-dir", str(target), *extra)
        assert result.returncode != 0 and not target.exists()
    target = tmp_path / "ok"
    result = cli(
        "restore", str(archive), "--data-dir", str(target), "--passphrase-file", str(phrase)
    )
    assert result.returncode == 0, result.stderr
    assert (target / "secrets" / "cookie_secret").read_bytes().strip() == secret


def test_postgres_hub_backed_up_with_pg_dump_and_restored(make_platform, tmp_path: Path) -> None:
    with postgres_server() as db_url:
        platform: Platform = make_platform(f"hub: {{db_url: '{db_url}'}}\n{CONFIG}")
        platform.start()
        add_user(platform.data_dir, "gus")
        gus = HubUser(platform.url, "gus")
        assert gus.login(PASSWORD).status_code == 200
        token = gus.new_token()
        gus.close()
        archive = tmp_path / "pg.tar.gz"
        # no -c: the running platform's record says which config (and so which database)
        made = cli("backup", "--data-dir", str(platform.data_dir), "-o", str(archive))
        assert made.returncode == 0, made.stderr
        assert "postgresql" in made.stdout
        assert platform.stop() == 0

        new_url = db_url.rsplit("/", 1)[0] + "/restored"
        with psycopg.connect(db_url, autocommit=True) as conn:
            conn.execute("CREATE DATABASE restored")
        restored_dir = tmp_path / "restored"
        # without a target database the PostgreSQL backup is refused, and nothing is written
        refused = cli("restore", str(archive), "--data-dir", str(restored_dir))
        assert refused.returncode != 0 and not restored_dir.exists()
        # into a non-empty database: refused too (the original one)
        busy = cli("restore", str(archive), "--data-dir", str(restored_dir), "--db-url", db_url)
        assert busy.returncode != 0 and not restored_dir.exists()
        done = cli("restore", str(archive), "--data-dir", str(restored_dir), "--db-url", new_url)
        assert done.returncode == 0, done.stderr

        config = tmp_path / "restored.yaml"
        config.write_text(f"hub: {{db_url: '{new_url}'}}\n{CONFIG}")
        again = Platform(data_dir=restored_dir, config=config)
        try:
            again.start()
            assert hub_api(again.url, token, "/user").json()["name"] == "gus"
            gus2 = HubUser(again.url, "gus")
            assert gus2.login(PASSWORD).status_code == 200
            gus2.close()
        finally:
            again.stop()


def _real_backup(tmp_path: Path) -> bytes:
    data = tmp_path / "src-data"
    add_user(data, "kai")
    ensure_secrets(data / "secrets")
    archive = tmp_path / "src.tar.gz"
    assert cli("backup", "--data-dir", str(data), "-o", str(archive)).returncode == 0
    return archive.read_bytes()


def test_mismatched_version_needs_force(tmp_path: Path) -> None:
    from labfleet.ops.archive import pack, unpack

    manifest, members = unpack(_real_backup(tmp_path))
    manifest.labfleet_version = "0.0.1"
    old = tmp_path / "old.tar.gz"
    old.write_bytes(pack(members, manifest))
    target = tmp_path / "t"
    refused = cli("restore", str(old), "--data-dir", str(target))
    assert refused.returncode == 1 and "version mismatch" in refused.stderr
    assert "--force" in refused.stderr and not target.exists()
    forced = cli("restore", str(old), "--data-dir", str(target), "--force")
    assert forced.returncode == 0, forced.stderr
    assert "restored despite" in forced.stderr and (target / "accounts.sqlite").exists()


def test_tampered_member_with_a_sound_tarball_is_refused(tmp_path: Path) -> None:
    import io
    import tarfile

    blob = _real_backup(tmp_path)
    out = io.BytesIO()
    with (
        tarfile.open(fileobj=io.BytesIO(blob), mode="r:gz") as src,
        tarfile.open(fileobj=out, mode="w:gz") as dst,
    ):
        for info in src:
            data = src.extractfile(info).read()  # type: ignore[union-attr]
            if info.name == "secrets/cookie_secret":
                data = b"00" * 32 + b"\n"  # an attacker's cookie secret
            info.size = len(data)
            dst.addfile(info, io.BytesIO(data))
    bad = tmp_path / "tampered.tar.gz"
    bad.write_bytes(out.getvalue())
    target = tmp_path / "t"
    result = cli("restore", str(bad), "--data-dir", str(target))
    assert result.returncode == 1 and "checksum mismatch" in result.stderr
    assert not target.exists()
