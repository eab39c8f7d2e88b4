"""A pytest plugin for JupyterHub's own test_proxy.py: spawns may be slow here.

JupyterHub's API answers ``POST /users/{name}/server`` with 202 ("pending")
when the spawn takes longer than ``slow_spawn_timeout`` (10 s by default), and
``test_check_routes`` then looks for the user's route at once. On the loaded
2-core VM, starting the mock single-user server alone can take that long, so
the stock test failed there through Node CHP as well as through ours. With a
longer timeout the API waits for the spawn, as it does on a fast machine; the
test checks the same things. Loaded with ``-p tests.proxy.jupyterhub_patience``.
"""

from __future__ import annotations

from typing import Any

import pytest

SLOW_SPAWN_TIMEOUT_S = 120


@pytest.fixture(autouse=True)
def patient_spawns(request: pytest.FixtureRequest) -> None:
    if "app" in request.fixturenames:  # the module's MockHub
        app: Any = request.getfixturevalue("app")
        app.tornado_settings["slow_spawn_timeout"] = SLOW_SPAWN_TIMEOUT_S
