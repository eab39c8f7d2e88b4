"""The admin REST API as the password authenticator changes it, on a real JupyterHub.

* a deletion by a service listed in ``keep_accounts_for_services`` (the idle
  culler deleting an inactive hub user) removes the hub user only;
* a user added through the API gets an account without a password;
* renaming a password account is refused (its account, home and system
  account are keyed on the name).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from hubrunner import RunningHub, run_hub

from labfleet.auth.accounts import AccountStore
from labfleet.auth.settings import build_auth_settings
from labfleet.config.auth import AuthSection
from labfleet.runtime import Runtime

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningHub]:
    tmp = tmp_path_factory.mktemp("account-api")
    runtime = Runtime(data_dir=tmp / "data")
    settings = build_auth_settings(AuthSection.model_validate({"kind": "password"}), runtime)
    # the test service plays the idle culler
    settings["PasswordAuthenticator"]["keep_accounts_for_services"] = ["labfleet-test"]
    with run_hub(tmp / "hub", settings) as running:
        yield running


def store_of(hub: RunningHub) -> AccountStore:
    return AccountStore(hub.data_dir.parent / "data" / "accounts.sqlite")


def test_api_add_makes_a_passwordless_account_and_a_culler_delete_keeps_it(
    hub: RunningHub,
) -> None:
    with hub.api() as api:
        assert api.post("/users/quinn").status_code == 201
        account = store_of(hub).get("quinn")
        assert account is not None and not account.has_password
        assert api.delete("/users/quinn").status_code == 204
        assert api.get("/users/quinn").status_code == 404
    assert store_of(hub).exists("quinn")


def test_renaming_a_password_account_is_refused(hub: RunningHub) -> None:
    with hub.api() as api:
        assert api.post("/users/rita").status_code == 201
        refused = api.patch("/users/rita", json={"name": "rita2"})
        assert refused.status_code == 400
        assert "cannot be renamed" in refused.text
        assert api.patch("/users/rita", json={"name": "rita"}).status_code == 200
        assert api.get("/users/rita2").status_code == 404
