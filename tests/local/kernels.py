"""Run code in a user's kernel and also notice when the kernel dies (OOM) instead of hanging."""

from __future__ import annotations

import asyncio
import json
import uuid

import httpx
import websockets

KERNEL_DIED = "<kernel died>"


async def _execute(ws_url: str, headers: dict[str, str], code: str) -> str:
    msg_id = uuid.uuid4().hex
    request = {
        "header": {
            "msg_id": msg_id,
            "username": "test",
            "session": uuid.uuid4().hex,
            "msg_type": "execute_request",
            "version": "5.3",
        },
        "parent_header": {},
        "metadata": {},
        "channel": "shell",
        "content": {
            "code": code,
            "silent": False,
            "store_history": False,
            "user_expressions": {},
            "allow_stdin": False,
        },
    }
    out: list[str] = []
    async with websockets.connect(ws_url, additional_headers=headers, max_size=None) as ws:
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
                out.append(f"{msg['content']['ename']}: {msg['content']['evalue']}")
            elif kind == "status" and msg["content"]["execution_state"] == "idle":
                return "".join(out)


async def _run(server_url: str, token: str, code: str, timeout: float) -> str:
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


def run_code(server_url: str, token: str, code: str, timeout: float = 90) -> str:
    """stdout of ``code`` (errors as ``Name: message``), or KERNEL_DIED."""
    return asyncio.run(_run(server_url, token, code, timeout))
