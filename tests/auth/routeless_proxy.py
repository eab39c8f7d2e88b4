"""A stand-in proxy for auth tests: remembers routes in memory and forwards nothing.

The auth and policy tests talk to the hub's own port (``/hub/...``), so no
data plane is needed; this class only satisfies JupyterHub's Proxy API so the
hub starts without Node's configurable-http-proxy. The real proxy is tested
by the proxy and integration suites.
"""

from __future__ import annotations

from typing import Any

from jupyterhub.proxy import Proxy


class RoutelessProxy(Proxy):  # type: ignore[misc]
    should_start = False

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._routes: dict[str, dict[str, Any]] = {}

    async def add_route(self, routespec: str, target: str, data: dict[str, Any]) -> None:
        self._routes[routespec] = {"routespec": routespec, "target": target, "data": data}

    async def delete_route(self, routespec: str) -> None:
        self._routes.pop(routespec, None)

    async def get_all_routes(self) -> dict[str, dict[str, Any]]:
        return dict(self._routes)
