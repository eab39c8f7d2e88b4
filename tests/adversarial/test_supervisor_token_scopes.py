"""The supervisor service token holds what its one user on each platform needs (issue 13).

On one machine ``labfleet up`` lists users, resumes servers and applies account changes;
it never issues tokens. A token that could (the ``tokens`` scope) would mint one for any
account, an admin's included, with that account's whole rights: on one machine it is
refused by a real hub. On Kubernetes ``labfleet smoke`` issues its temporary user a token,
so there the role has ``tokens`` (why that adds nothing an ``admin:users`` holder lacks:
docs/kubernetes.md, "The supervisor token").
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from labfleet.config.load import parse_text
from labfleet.hub.settings import SUPERVISOR_SERVICE, build_hub_settings
from labfleet.runtime import Runtime
from labfleet.secrets import HubSecrets
from tests.support.client import HubUser
from tests.support.members import Member, platform_with_members
from tests.support.platform import Platform

ADMIN = f"ada{secrets.token_hex(2)}"
PASSWORD = "correct horse battery staple"
SECRETS = HubSecrets(
    cookie_secret="ab" * 32, proxy_token="p" * 64, crypt_key="cd" * 32, supervisor_token="s" * 64
)


def _supervisor_scopes(platform: str) -> set[str]:
    runtime = Runtime(data_dir=Path("/srv/lf"), platform=platform)  # type: ignore[arg-type]
    settings = build_hub_settings(parse_text(""), runtime, SECRETS)
    roles = settings["JupyterHub"]["load_roles"]
    (role,) = [r for r in roles if SUPERVISOR_SERVICE in r.get("services", [])]
    return set(role["scopes"])


def test_only_the_kubernetes_supervisor_may_issue_tokens() -> None:
    local, kube = _supervisor_scopes("local"), _supervisor_scopes("kubernetes")
    assert "tokens" not in local
    assert kube - local == {"tokens"}


@pytest.fixture(scope="module")
def platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Platform]:
    with platform_with_members(
        tmp_path_factory.mktemp("supervisor"),
        "culling: {enabled: false}\nlocal: {isolation: none}\n",
        [Member(ADMIN, PASSWORD, admin=True)],
    ) as started:
        yield started


@pytest.mark.integration
def test_the_local_supervisor_token_lists_users_but_cannot_mint_an_admins_token(
    platform: Platform,
) -> None:
    signed_in = HubUser(platform.url, ADMIN)  # the hub knows a member once they sign in
    try:
        assert signed_in.login(PASSWORD).status_code == 200
    finally:
        signed_in.close()
    token = (platform.data_dir / "secrets" / "supervisor_token").read_text().strip()
    hub = httpx.Client(
        base_url=f"{platform.url}/hub/api", headers={"Authorization": f"token {token}"}, timeout=30
    )
    with hub:
        # what `labfleet up`/`status` do with it still works
        users = hub.get("/users")
        assert users.status_code == 200, users.text
        assert ADMIN in [u["name"] for u in users.json()]
        # a token for the admin (which would carry the admin's rights) is refused
        minted = hub.post(f"/users/{ADMIN}/tokens", json={"expires_in": 60})
        assert minted.status_code == 403, minted.text
        listed = hub.get(f"/users/{ADMIN}/tokens")
        assert listed.status_code == 403, listed.text
