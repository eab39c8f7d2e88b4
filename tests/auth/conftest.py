"""Fixtures shared by the OIDC/Google tests: one LocalOpenIDProvider and hubs using it."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from hubrunner import RunningHub, run_hub
from oidc_provider import CLIENT_ID, CLIENT_SECRET, Account, LocalOpenIDProvider

from labfleet.auth.settings import build_auth_settings
from labfleet.config.auth import AuthSection
from labfleet.runtime import Runtime

# The repository root, so tests here can use the shared tests.support helpers.
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

ACCOUNTS = [
    Account("alice", "Alice@Corp.example", hd="corp.example", groups=["staff"]),
    Account("eve", "eve@corp.example", email_verified=False, hd="corp.example"),
    Account("bob", "bob@corp.example", hd=None),  # consumer account with a work address
    Account("carol", "carol@other.example", hd="other.example"),
    Account("dan", "dan@corp.example", hd="corp.example", groups=["admins"]),
    Account("zed", "zed@elsewhere.example", hd=None),
    Account("pat", "pat@partner.example", groups=["partners"]),
    Account("hostile", "../x@corp.example", hd="corp.example"),
]


@pytest.fixture(scope="session")
def provider() -> Iterator[LocalOpenIDProvider]:
    with LocalOpenIDProvider(ACCOUNTS).running() as running:
        yield running


def _hub(
    tmp: pytest.TempPathFactory, provider: LocalOpenIDProvider, auth: dict[str, object]
) -> Iterator[RunningHub]:
    path = tmp.mktemp(str(auth["kind"]))
    settings = build_auth_settings(AuthSection.model_validate(auth), Runtime(data_dir=path))
    env = {"LABFLEET_TEST_OIDC_SECRET": CLIENT_SECRET}
    with run_hub(path / "hub", settings, env=env) as running:
        provider.redirect_uris.append(f"{running.hub}/oauth_callback")
        yield running


@pytest.fixture(scope="session")
def oidc_hub(
    tmp_path_factory: pytest.TempPathFactory, provider: LocalOpenIDProvider
) -> Iterator[RunningHub]:
    yield from _hub(
        tmp_path_factory,
        provider,
        {
            "kind": "oidc",
            "oidc": {
                "issuer": provider.url,
                "client_id": CLIENT_ID,
                "client_secret": "env:LABFLEET_TEST_OIDC_SECRET",
                "groups_claim": "groups",
                "scopes": ["openid", "email", "profile"],
            },
            "allowed_domains": ["corp.example"],
            "allowed_groups": ["partners"],
            "admin_groups": ["admins"],
        },
    )


@pytest.fixture(scope="session")
def google_hub(
    tmp_path_factory: pytest.TempPathFactory, provider: LocalOpenIDProvider
) -> Iterator[RunningHub]:
    yield from _hub(
        tmp_path_factory,
        provider,
        {
            "kind": "google",
            "google": {
                "client_id": CLIENT_ID,
                "client_secret": "env:LABFLEET_TEST_OIDC_SECRET",
                "api_url": provider.url,
                "authorize_url": f"{provider.url}/authorize",
            },
            "allowed_domains": ["corp.example"],
            # allow_all must not lift the hd and verified-email checks:
            "allow_all": True,
        },
    )
