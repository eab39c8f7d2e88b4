"""Secret rotation on a running platform keeps what should survive and ends what should not.

Follows docs/operating.md "Rotate secrets": `labfleet rotate crypt-key`, then
`proxy-token`, then `cookie-secret`, against one running `labfleet up`.
"""

from __future__ import annotations

import base64
import json
import sqlite3
from pathlib import Path

import httpx
import pytest
from cryptography.fernet import Fernet, InvalidToken

from labfleet.ops.rotate import reencrypt_auth_state
from labfleet.secrets import ensure_secrets
from tests.ops.helpers import PASSWORD, add_user, cli, hub_api
from tests.support.client import HubUser
from tests.support.platform import Platform

pytestmark = pytest.mark.integration


def _fernet(hex_key: str) -> Fernet:
    return Fernet(base64.urlsafe_b64encode(bytes.fromhex(hex_key)))


def _secret(data: Path, name: str) -> str:
    return (data / "secrets" / name).read_text().strip()


def _pid(data: Path, name: str) -> int:
    return int((data / "state" / name).read_text())


def _set_auth_state(db: Path, user: str, key: str, state: dict[str, str]) -> None:
    with sqlite3.connect(db) as conn:
        token = _fernet(key).encrypt(json.dumps(state).encode())
        conn.execute("UPDATE users SET encrypted_auth_state = ? WHERE name = ?", (token, user))


def _auth_state_token(db: Path, user: str) -> bytes:
    with sqlite3.connect(db) as conn:
        row = conn.execute("SELECT encrypted_auth_state FROM users WHERE name = ?", (user,))
        return bytes(row.fetchone()[0])


def _logged_in(user: HubUser) -> bool:
    page = user.http.get("/hub/home")
    return page.status_code == 200 and "/hub/login" not in str(page.url)


def test_rotations_keep_and_end_the_right_sessions(make_platform) -> None:
    platform: Platform = make_platform("culling: {enabled: false}\n")
    platform.start()
    data = platform.data_dir
    add_user(data, "hal")
    hal = HubUser(platform.url, "hal")
    assert hal.login(PASSWORD).status_code == 200
    hal.start_server().raise_for_status()
    hal.wait_ready()
    token = hal.new_token()
    db = data / "jupyterhub.sqlite"
    old_key = _secret(data, "crypt_key")
    _set_auth_state(db, "hal", old_key, {"refresh_token": "kept-across-rotation"})
    args = ["--data-dir", str(data), "-c", str(platform.config)]

    # crypt-key: everything survives; auth_state now opens with the new key only
    hub_before = _pid(data, "jupyterhub.pid")
    done = cli("rotate", "crypt-key", *args)
    assert done.returncode == 0, done.stderr + platform.log()[-6000:]
    new_key = _secret(data, "crypt_key")
    assert ";" not in new_key and new_key != old_key
    sealed = _auth_state_token(db, "hal")
    assert json.loads(_fernet(new_key).decrypt(sealed)) == {"refresh_token": "kept-across-rotation"}
    with pytest.raises(InvalidToken):
        _fernet(old_key).decrypt(sealed)
    assert _pid(data, "jupyterhub.pid") != hub_before, "the hub was restarted"
    assert _logged_in(hal), "a crypt-key rotation must not log anyone out"
    assert hal.server_model().get("ready")
    assert hal.run_code(token, "print(6*7)").strip() == "42"

    # proxy-token: a new proxy with the new token; routes, sessions and servers survive
    old_proxy_token = _secret(data, "proxy_token")
    proxy_before = _pid(data, "proxy.pid")
    done = cli("rotate", "proxy-token", *args)
    assert done.returncode == 0, done.stderr + platform.log()[-6000:]
    assert _secret(data, "proxy_token") != old_proxy_token
    assert _pid(data, "proxy.pid") != proxy_before, "the proxy was restarted"
    api_port = json.loads((data / "state" / "ports.json").read_text())["proxy_api"]
    routes = f"http://127.0.0.1:{api_port}/api/routes"
    old = httpx.get(routes, headers={"Authorization": f"token {old_proxy_token}"})
    assert old.status_code == 403
    new = httpx.get(routes, headers={"Authorization": f"token {_secret(data, 'proxy_token')}"})
    assert new.status_code == 200 and any("/user/hal" in r for r in new.json())
    assert _logged_in(hal)
    assert hal.run_code(token, "print('after proxy rotation')").strip() == "after proxy rotation"

    # cookie-secret: everyone is logged out on purpose; API tokens and servers stay
    done = cli("rotate", "cookie-secret", *args)
    assert done.returncode == 0, done.stderr + platform.log()[-6000:]
    assert not _logged_in(hal), "the old browser session must be over"
    assert hub_api(platform.url, token, "/user").json()["name"] == "hal"
    assert hal.run_code(token, "print('still running')").strip() == "still running"
    again = HubUser(platform.url, "hal")
    assert again.login(PASSWORD).status_code == 200 and _logged_in(again)
    again.close()
    hal.close()
    assert platform.stop() == 0


def test_crypt_key_rotation_offline_and_a_foreign_value(tmp_path: Path) -> None:
    """With the platform stopped the rotation edits files and the database only."""
    data = tmp_path / "data"
    secrets = ensure_secrets(data / "secrets")
    db = data / "jupyterhub.sqlite"
    with sqlite3.connect(db) as conn:
        conn.execute(
            "CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT, encrypted_auth_state BLOB)"
        )
        conn.execute("INSERT INTO users (name) VALUES ('ivy'), ('jon')")
    _set_auth_state(db, "ivy", secrets.crypt_key, {"a": "b"})
    done = cli("rotate", "crypt-key", "--data-dir", str(data))
    assert done.returncode == 0, done.stderr
    new_key = _secret(data, "crypt_key")
    assert json.loads(_fernet(new_key).decrypt(_auth_state_token(db, "ivy"))) == {"a": "b"}
    # a value no key opens is reported, and the rotation keeps the old key for it
    _set_auth_state(db, "jon", Fernet.generate_key().hex()[:64], {"x": "y"})
    with pytest.raises(Exception, match="jon"):
        reencrypt_auth_state(f"sqlite:///{db}", [new_key])


def test_reencrypt_only_uses_the_pods_key_list(tmp_path: Path) -> None:
    """Kubernetes step 2: the key list comes from the hub pod's environment (`new;old`)."""
    import os

    db = tmp_path / "hub.sqlite"
    with sqlite3.connect(db) as conn:
        conn.execute(
            "CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT, encrypted_auth_state BLOB)"
        )
        conn.execute("INSERT INTO users (name) VALUES ('kim')")
    old, new = "11" * 32, "22" * 32
    _set_auth_state(db, "kim", old, {"k": "v"})
    secrets = ensure_secrets(tmp_path / "elsewhere")
    env = {
        **os.environ,
        **secrets.to_env(),
        "LABFLEET_SECRET_CRYPT_KEY": f"{new};{old}",
        "LABFLEET_PLATFORM": "kubernetes",
        "LABFLEET_DATA_DIR": str(tmp_path / "pod"),
        "LABFLEET_DB_URL": f"sqlite:///{db}",
    }
    refused = cli("rotate", "crypt-key", env=env)
    assert refused.returncode == 1 and "hub Secret" in refused.stderr
    done = cli("rotate", "crypt-key", "--reencrypt-only", env=env)
    assert done.returncode == 0, done.stderr
    assert json.loads(_fernet(new).decrypt(_auth_state_token(db, "kim"))) == {"k": "v"}
