"""``labfleet rotate``: replace one secret on a running platform without surprises.

What each rotation keeps and what it ends (the tests check both sides):

* ``crypt-key``: keeps sessions, tokens and every user's ``auth_state``. Two-key window:
  the key list becomes ``new;old`` and the hub restarts (it now reads both, writes with the
  new one), every stored ``auth_state`` is re-encrypted with the new key, then the old key
  is dropped and the hub restarts again.
* ``cookie-secret``: ends every browser session on purpose (the hub's signed cookies no
  longer verify, and the OAuth tokens handed to users' servers by those sessions are
  revoked); API tokens people made keep working; servers keep running.
* ``proxy-token``: keeps sessions and servers; the proxy and the hub restart together so
  that neither ever holds the other's old token (the new hub starts a new proxy and
  re-adds every route).
* ``oauth-client``: writes the identity provider's new client secret to the file that
  ``client_secret: file:PATH`` names and restarts the hub; sessions survive.

On Kubernetes the secrets live in a Secret: see docs/operating.md for the rollout.
"""

from __future__ import annotations

import base64
import os
from collections.abc import Callable
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from sqlalchemy import create_engine, inspect, text

from labfleet.ops.hubprocess import restart_hub
from labfleet.ops.target import Target
from labfleet.secrets import crypt_keys, new_secret_value, replace_secret

Say = Callable[[str], None]
KINDS = ("crypt-key", "cookie-secret", "proxy-token", "oauth-client")


class RotateError(Exception):
    pass


def _fernet(hex_key: str) -> Fernet:
    return Fernet(base64.urlsafe_b64encode(bytes.fromhex(hex_key)))


def reencrypt_auth_state(db_url: str, keys: list[str]) -> int:
    """Re-encrypt every ``users.encrypted_auth_state`` with ``keys[0]``; returns the count.

    A value none of the keys opens is left alone and reported: it was already unreadable.
    """
    multi = MultiFernet([_fernet(k) for k in keys])
    engine = create_engine(db_url)
    count = 0
    unreadable: list[str] = []
    try:
        with engine.begin() as conn:
            if "users" not in inspect(conn).get_table_names():
                return 0
            rows = conn.execute(
                text(
                    "SELECT id, name, encrypted_auth_state FROM users "
                    "WHERE encrypted_auth_state IS NOT NULL"
                )
            ).fetchall()
            for user_id, name, token in rows:
                try:
                    fresh = multi.rotate(bytes(token))
                except InvalidToken:
                    unreadable.append(str(name))
                    continue
                conn.execute(
                    text("UPDATE users SET encrypted_auth_state = :v WHERE id = :id"),
                    {"v": fresh, "id": user_id},
                )
                count += 1
    finally:
        engine.dispose()
    if unreadable:
        raise RotateError(
            f"auth_state of {', '.join(unreadable)} opens with none of the keys; "
            "the old key is kept until that is resolved"
        )
    return count


def revoke_browser_sessions(db_url: str) -> int:
    """Delete the OAuth tokens and codes that browser logins created (not people's API tokens)."""
    engine = create_engine(db_url)
    try:
        with engine.begin() as conn:
            tables = inspect(conn).get_table_names()
            if "api_tokens" not in tables:
                return 0
            gone = conn.execute(text("DELETE FROM api_tokens WHERE session_id IS NOT NULL"))
            if "oauth_codes" in tables:
                conn.execute(text("DELETE FROM oauth_codes"))
            return int(gone.rowcount or 0)
    finally:
        engine.dispose()


def _local_only(target: Target) -> Path:
    if target.runtime.platform == "kubernetes":
        raise RotateError(
            "on Kubernetes the secrets live in the hub Secret: follow docs/operating.md "
            "(Rotate secrets on Kubernetes)"
        )
    secrets_dir = target.runtime.secrets_dir
    if not (secrets_dir / "cookie_secret").exists():
        raise RotateError(f"no secrets in {secrets_dir}: is this a labfleet data directory?")
    return secrets_dir


def _restart(target: Target, say: Say, *, with_proxy: bool = False) -> None:
    if restart_hub(target.runtime, target.config.hub.base_url, with_proxy=with_proxy):
        say("restarted the hub" + (" and the proxy" if with_proxy else ""))


def rotate_crypt_key(target: Target, say: Say) -> None:
    secrets_dir = _local_only(target)
    old = crypt_keys((secrets_dir / "crypt_key").read_text())
    new = new_secret_value("crypt_key")
    replace_secret(secrets_dir, "crypt_key", ";".join([new, *old]))
    say("step 1/3: the hub now reads the old and the new key, and writes with the new one")
    _restart(target, say)
    count = reencrypt_auth_state(target.db_url, [new, *old])
    say(f"step 2/3: re-encrypted the auth_state of {count} user(s) with the new key")
    replace_secret(secrets_dir, "crypt_key", new)
    _restart(target, say)
    say("step 3/3: the old key is gone")


def reencrypt_only(target: Target, say: Say) -> None:
    """The middle step alone, with the key list the hub holds (Kubernetes: from its Secret)."""
    from labfleet.secrets import ENV_PREFIX

    if target.runtime.platform == "kubernetes":
        value = os.environ.get(ENV_PREFIX + "CRYPT_KEY", "")
    else:
        value = (target.runtime.secrets_dir / "crypt_key").read_text()
    keys = crypt_keys(value)
    if not keys:
        raise RotateError("no crypt key found")
    count = reencrypt_auth_state(target.db_url, keys)
    say(f"re-encrypted the auth_state of {count} user(s) with the first of {len(keys)} key(s)")


def rotate_cookie_secret(target: Target, say: Say) -> None:
    secrets_dir = _local_only(target)
    replace_secret(secrets_dir, "cookie_secret", new_secret_value("cookie_secret"))
    revoked = revoke_browser_sessions(target.db_url)
    say(f"new cookie secret; revoked {revoked} session token(s): everyone logs in again")
    _restart(target, say)


def rotate_proxy_token(target: Target, say: Say) -> None:
    secrets_dir = _local_only(target)
    replace_secret(secrets_dir, "proxy_token", new_secret_value("proxy_token"))
    say("new proxy token")
    _restart(target, say, with_proxy=True)


def rotate_oauth_client(target: Target, new_secret: str, say: Say) -> None:
    auth = target.config.auth
    section = getattr(auth, auth.kind, None)
    reference = getattr(section, "client_secret", None) if section is not None else None
    if not reference:
        raise RotateError(f"auth.kind {auth.kind!r} has no OAuth client secret to rotate")
    if not reference.startswith("file:"):
        raise RotateError(
            f"auth.{auth.kind}.client_secret is not a file: reference; change "
            + (
                "the variable it names and restart"
                if reference.startswith("env:")
                else "it to 'file:/path' (kept out of the config) first"
            )
        )
    path = Path(reference[5:])
    tmp = path.with_name(f".{path.name}.new")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(new_secret.strip() + "\n")
    os.replace(tmp, path)
    say(f"wrote the new client secret to {path}")
    _restart(target, say)


def rotate(
    kind: str, target: Target, say: Say, new_secret: str | None = None, reencrypt: bool = False
) -> None:
    if kind == "crypt-key" and reencrypt:
        reencrypt_only(target, say)
    elif kind == "crypt-key":
        rotate_crypt_key(target, say)
    elif kind == "cookie-secret":
        rotate_cookie_secret(target, say)
    elif kind == "proxy-token":
        rotate_proxy_token(target, say)
    elif kind == "oauth-client":
        if not new_secret:
            raise RotateError("give the new client secret with --secret-file FILE or on stdin")
        rotate_oauth_client(target, new_secret, say)
    else:
        raise RotateError(f"unknown rotation {kind!r}: one of {', '.join(KINDS)}")
