"""JupyterLab page settings for members' servers: no build check (issue 16).

On every page load JupyterLab asks its server ``GET /lab/api/build`` whether
the installed extensions need a rebuild, and the server answers by running
``node yarn.js config --json`` (about a second of CPU on a 2-core machine,
beside the member's own page load; 50 members signing in at once pay it 50
times). A member cannot rebuild the shared environment anyway — the admin
installs extensions as prebuilt packages — so the question only ever yields a
"Build recommended" dialog nobody can act on. This extension sets
``buildCheck`` and ``buildAvailable`` to false in the page config that
JupyterLab's page handler reads on each request.

jupyter_server loads extensions in alphabetical order, so JupyterLab's own
defaults (``setdefault``) are in place before this runs; the values are
overwritten in the same dict either way.
"""

from __future__ import annotations

from typing import Any

from labfleet.spawn.server_tuning import LAB_SETTINGS as EXTENSION

#: what members' JupyterLab pages are told (JupyterLab's ``page_config`` keys)
PAGE_CONFIG = {"buildCheck": False, "buildAvailable": False}


def _jupyter_server_extension_points() -> list[dict[str, str]]:
    return [{"module": EXTENSION}]


def _load_jupyter_server_extension(serverapp: Any) -> None:
    settings = serverapp.web_app.settings
    settings.setdefault("page_config_data", {}).update(PAGE_CONFIG)
