"""The hub's start pass reads the account store's pending changes once, not once per user.

JupyterHub calls ``add_user`` for every hub user while it starts; with 10,000 users a
read of the store per call was seconds of every restart (issue 16). The changes must
still be enforced, each exactly once.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from jupyterhub import orm
from jupyterhub.roles import get_default_roles
from sqlalchemy import create_engine
from sqlalchemy.orm import sessionmaker

from labfleet.auth.accounts import AccountStore
from labfleet.auth.hashing import ScryptParams
from labfleet.auth.password import PasswordAuthenticator

FAST = ScryptParams(n=2**10)


@pytest.fixture
def db():  # type: ignore[no-untyped-def]
    engine = create_engine("sqlite://")
    orm.Base.metadata.create_all(engine)
    session = sessionmaker(bind=engine)()
    for role in get_default_roles():  # what the hub creates before it adds users
        session.add(orm.Role(name=role["name"], scopes=list(role.get("scopes", []))))
    session.commit()
    yield session
    session.close()


def test_start_pass_reads_changes_once_and_applies_each_once(
    tmp_path: Path, db, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = AccountStore(tmp_path / "accounts.sqlite", FAST)
    names = [f"m{i}" for i in range(20)]
    for name in names:
        store.add(name, None)
        db.add(orm.User(name=name, cookie_id=f"cookie-{name}"))
    db.commit()
    store.set_admin("m3", True)  # recorded while the hub was stopped

    auth = PasswordAuthenticator(accounts_db=str(store.path), scrypt_n=FAST.n)
    reads = 0
    original = AccountStore.access_changes

    def counting(self: AccountStore):  # type: ignore[no-untyped-def]
        nonlocal reads
        reads += 1
        return original(self)

    monkeypatch.setattr(AccountStore, "access_changes", counting)

    async def start_pass() -> None:
        for user in db.query(orm.User):
            await auth.add_user(user)

    asyncio.run(start_pass())
    assert reads == 1, f"{reads} reads of the store for {len(names)} users"
    assert db.query(orm.User).filter_by(name="m3").one().admin
    assert not db.query(orm.User).filter_by(name="m4").one().admin
    assert original(store) == []  # applied, and recorded as applied
