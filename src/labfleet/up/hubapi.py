"""A tiny client for the hub REST API, used by the supervisor (stdlib only)."""

from __future__ import annotations

import json
import os
import urllib.error
import urllib.request
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import quote

#: asks the hub's list endpoints for pages (``{"items": [...], "_pagination": {...}}``)
PAGINATION = "application/jupyterhub-pagination+json"


class HubAPI:
    def __init__(self, base_url: str, token: str):
        self.base_url = base_url.rstrip("/")
        self._token = token

    def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        timeout: float = 10,
        headers: Mapping[str, str] | None = None,
    ) -> Any:
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(  # noqa: S310 - loopback hub URL we built
            self.base_url + path,
            data=data,
            method=method,
            headers={
                "Authorization": f"token {self._token}",
                "Content-Type": "application/json",
                **(headers or {}),
            },
        )
        with urllib.request.urlopen(req, timeout=timeout) as resp:  # noqa: S310
            payload = resp.read()
        return json.loads(payload) if payload else None

    def users(self, state: str = "", attempts: int = 5) -> list[dict[str, Any]]:
        """Every user model the hub lists (``state``: ``active``, ``ready``, ... or all).

        The hub hands out its user list in pages (``api_page_max_limit``, 200 by
        default); a request that does not ask for pages gets the first one only, with a
        warning in the hub's log. So this asks for pages and follows them to the end.
        Offsets shift when the list changes between two pages (a server stops, a user
        is added), which could skip a user: the orphan sweep would then stop a server
        the hub knows. A walk whose total changed on the way is walked again.
        """
        query = f"state={quote(state)}&" if state else ""
        for _ in range(attempts):
            found: dict[str, dict[str, Any]] = {}
            totals: set[int] = set()
            offset = 0
            while True:
                page = self.request(
                    "GET", f"/users?{query}offset={offset}", headers={"Accept": PAGINATION}
                )
                if isinstance(page, list):  # a hub without pagination: the whole list
                    return page
                items = list(page.get("items") or [])
                info = page.get("_pagination") or {}
                totals.add(int(info.get("total", len(items))))
                for user in items:
                    found[user["name"]] = user
                following = info.get("next")
                if not following or not items:
                    break
                offset = int(following.get("offset", offset + len(items)))
            if len(totals) == 1 and len(found) == totals.pop():
                return list(found.values())
        raise OSError("the hub's user list kept changing while it was read page by page")

    def running_servers(self) -> dict[str, list[str]]:
        """{username: [server names]} of servers that are ready now."""
        users = self.users("ready")
        return {
            u["name"]: sorted(name for name, s in u.get("servers", {}).items() if s.get("ready"))
            for u in users
        }

    def active_servers(self) -> dict[str, list[str]]:
        """{username: [server names]} of servers that are running or starting."""
        users = self.users("active")
        return {u["name"]: sorted(u.get("servers", {})) for u in users}

    def apply_access_changes(self) -> list[str]:
        """Make the hub enforce recorded account changes now (see labfleet.auth.hub_access)."""
        # stopping a member's servers may take a while; the hub finishes it either way
        answer = self.request("POST", "/labfleet/access", {}, timeout=120) or {}
        return list(answer.get("applied", []))

    def start_server(self, user: str, server: str = "") -> None:
        path = f"/users/{quote(user, safe='')}/server"
        if server:
            path = f"/users/{quote(user, safe='')}/servers/{quote(server, safe='')}"
        try:
            self.request("POST", path, {})
        except urllib.error.HTTPError as exc:
            if exc.code != 400:  # 400: already running
                raise


def local_hub(data_dir: Path, environ: Mapping[str, str] | None = None) -> HubAPI | None:
    """The running hub of ``data_dir``, or None if it is down.

    ``labfleet up``: the persisted hub port and the supervisor token file.
    In the hub pod (``kubectl exec ... labfleet users ...``): the
    ``LABFLEET_HUB_PORT`` and ``LABFLEET_SECRET_SUPERVISOR_TOKEN`` variables.
    """
    env = os.environ if environ is None else environ
    try:
        ports = json.loads((data_dir / "state" / "ports.json").read_text())
        token = (data_dir / "secrets" / "supervisor_token").read_text().strip()
        hub_port = int(ports["hub"])
    except (OSError, ValueError, KeyError, TypeError):
        token = env.get("LABFLEET_SECRET_SUPERVISOR_TOKEN", "")
        hub_port = int(env.get("LABFLEET_HUB_PORT", "0") or 0)
        if not token or not hub_port:
            return None
    base = f"http://127.0.0.1:{hub_port}/hub/api"
    try:
        with urllib.request.urlopen(base + "/", timeout=3) as resp:  # noqa: S310 - loopback
            if resp.status != 200:
                return None
    except (OSError, urllib.error.URLError):
        return None
    return HubAPI(base, token)


def is_healthy(url: str, timeout: float = 2) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:  # noqa: S310 - loopback
            return bool(resp.status == 200)
    except (OSError, urllib.error.URLError):
        return False
