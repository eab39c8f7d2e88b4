"""JupyterHub's admin page shows which profile each server runs (issue 17).

The admin page's "Profile" column reads ``user_options.profile`` from the REST
API. A server started without a form (one profile offered) or through the API
with no options used to leave that empty, so an admin could not see who runs
what. The profile labfleet resolved is now recorded there and in the database,
so it is still shown after a hub restart.
"""

from __future__ import annotations

import json
import sqlite3

import pytest

from tests.integration.test_embedded_flow import PASSWORD, add_user
from tests.support.client import HubUser
from tests.support.platform import Platform

pytestmark = pytest.mark.integration

CONFIG = """\
culling: {enabled: false}
profiles:
  - {display_name: Small, slug: small, default: true, cpu: 1, memory: 1G}
  - {display_name: Large, slug: large, cpu: 2, memory: 2G}
"""


def test_the_profile_column_names_the_resolved_profile(make_platform) -> None:
    platform: Platform = make_platform(CONFIG)
    platform.start()
    add_user(platform.data_dir, "pam")
    pam = HubUser(platform.url, "pam")
    try:
        assert pam.login(PASSWORD).status_code == 200
        pam.start_server().raise_for_status()  # no options: the default profile
        pam.wait_ready()
        assert pam.server_model()["user_options"].get("profile") == "small"
        with sqlite3.connect(platform.data_dir / "jupyterhub.sqlite") as db:
            (stored,) = db.execute(
                "select s.user_options from spawners s join users u on u.id = s.user_id"
                " where u.name = 'pam' and s.name = ''"
            ).fetchone()
        assert json.loads(stored).get("profile") == "small"
        pam.stop_server()
        pam.wait_stopped()
    finally:
        pam.close()
