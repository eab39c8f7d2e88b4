"""A user's view of the hub over real HTTP: form login with XSRF, REST spawn, kernels."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any
from urllib.parse import quote

import httpx
import websockets

from labfleet.kube.smoke.hubapi import execute_request


class HubUser:
    def __init__(self, base_url: str, name: str):
        self.base_url = base_url.rstrip("/")
        self.name = name
        self.http = httpx.Client(base_url=self.base_url, follow_redirects=True, timeout=30)

    def close(self) -> None:
        self.http.close()

    # --- hub ------------------------------------------------------------------
    def xsrf(self) -> str:
        token = self.http.cookies.get("_xsrf", path="/hub/")
        assert token, "no _xsrf cookie yet"
        return token

    def login(self, password: str) -> httpx.Response:
        # next=/hub/home: land on the home page instead of auto-spawning
        self.http.get("/hub/login?next=%2Fhub%2Fhome")
        return self.http.post(
            "/hub/login?next=%2Fhub%2Fhome",
            data={"username": self.name, "password": password, "_xsrf": self.xsrf()},
        )

    def api(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        headers = kwargs.pop("headers", {})
        headers["X-XSRFToken"] = self.xsrf()
        return self.http.request(method, f"/hub/api{path}", headers=headers, **kwargs)

    def start_server(self, options: dict[str, Any] | None = None) -> httpx.Response:
        return self.api("POST", f"/users/{quote(self.name)}/server", json=options or {})

    def stop_server(self) -> httpx.Response:
        return self.api("DELETE", f"/users/{quote(self.name)}/server")

    def server_model(self) -> dict[str, Any]:
        resp = self.api("GET", f"/users/{quote(self.name)}")
        resp.raise_for_status()
        model: dict[str, Any] = resp.json().get("servers", {}).get("", {})
        return model

    def wait_ready(self, timeout: float = 90) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            model = self.server_model()
            if model.get("ready"):
                return
            time.sleep(0.25)
        raise TimeoutError(f"server of {self.name} not ready after {timeout}s")

    def wait_stopped(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.server_model():
                return
            time.sleep(0.25)
        raise TimeoutError(f"server of {self.name} still running after {timeout}s")

    def new_token(self) -> str:
        resp = self.api("POST", f"/users/{quote(self.name)}/tokens", json={"note": "test"})
        resp.raise_for_status()
        token: str = resp.json()["token"]
        return token

    # --- the user's server ------------------------------------------------------
    def server_url(self, path: str = "") -> str:
        return f"{self.base_url}/user/{quote(self.name)}/{path.lstrip('/')}"

    def contents_put(self, token: str, path: str, text: str) -> httpx.Response:
        return httpx.put(
            self.server_url(f"api/contents/{path}"),
            headers={"Authorization": f"token {token}"},
            json={"type": "file", "format": "text", "content": text},
            timeout=30,
        )

    def contents_get(self, token: str, path: str) -> httpx.Response:
        return httpx.get(
            self.server_url(f"api/contents/{path}"),
            headers={"Authorization": f"token {token}"},
            timeout=30,
        )

    def run_code(self, token: str, code: str, timeout: float = 60) -> str:
        return asyncio.run(run_in_kernel(self.server_url(), token, code, timeout))


#: what run_in_kernel returns when the kernel dies mid-cell (e.g. killed by a memory limit)
KERNEL_DIED = "<kernel died>"


def run_code(server_url: str, token: str, code: str, timeout: float = 90) -> str:
    """Synchronous :func:`run_in_kernel`."""
    return asyncio.run(run_in_kernel(server_url, token, code, timeout))


async def run_in_kernel(server_url: str, token: str, code: str, timeout: float = 60) -> str:
    """Start a kernel over REST, run ``code`` over the websocket, return its stdout."""
    headers = {"Authorization": f"token {token}"}
    async with httpx.AsyncClient(headers=headers, timeout=30) as http:
        resp = await http.post(server_url + "api/kernels", json={"name": "python3"})
        resp.raise_for_status()
        kernel_id = resp.json()["id"]
        try:
            ws_url = server_url.replace("http", "ws", 1) + f"api/kernels/{kernel_id}/channels"
            return await asyncio.wait_for(_execute(ws_url, headers, code), timeout)
        finally:
            await http.delete(server_url + f"api/kernels/{kernel_id}")


async def _execute(ws_url: str, headers: dict[str, str], code: str) -> str:
    request = execute_request(code, "test")
    msg_id = request["header"]["msg_id"]
    out: list[str] = []
    async with websockets.connect(
        ws_url, additional_headers=headers, max_size=None, open_timeout=60
    ) as ws:
        await ws.send(json.dumps(request))
        while True:
            msg = json.loads(await ws.recv())
            kind = msg.get("msg_type")
            if kind == "status" and msg["content"]["execution_state"] in ("restarting", "dead"):
                return KERNEL_DIED  # announced by the server with no parent message
            if msg.get("parent_header", {}).get("msg_id") != msg_id:
                continue
            if kind == "stream":
                out.append(msg["content"]["text"])
            elif kind == "error":
                out.append("ERROR: " + msg["content"]["ename"] + ": " + msg["content"]["evalue"])
            elif kind == "status" and msg["content"]["execution_state"] == "idle":
                return "".join(out)
