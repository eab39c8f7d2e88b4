"""A real JupyterHub with PasswordAuthenticator: a login storm hashes in worker processes
and the hub keeps answering other requests meanwhile (asserted by order, not time)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import httpx
import psutil
import pytest
from hubrunner import RunningHub, run_hub, xsrf_from

from labfleet.auth.accounts import AccountStore
from labfleet.auth.hash_pool import core_count
from labfleet.auth.settings import build_auth_settings
from labfleet.config.auth import AuthSection
from labfleet.runtime import Runtime

pytestmark = pytest.mark.integration

PASSWORD = "storm password 1"
#: four hashes per worker: the storm outlasts the time it takes to send the other requests
MEMBERS = [f"storm{i}" for i in range(min(64, 4 * core_count()))]


@pytest.fixture(scope="module")
def hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningHub]:
    tmp = tmp_path_factory.mktemp("hash-pool-hub")
    runtime = Runtime(data_dir=tmp / "data")
    store = AccountStore(runtime.accounts_db)  # production scrypt cost
    for name in MEMBERS:
        store.add(name, PASSWORD)
    settings = build_auth_settings(AuthSection.model_validate({"kind": "password"}), runtime)
    with run_hub(tmp / "hub", settings) as running:
        yield running


async def _login(
    http: httpx.AsyncClient, name: str, order: list[str], posting: asyncio.Semaphore
) -> int:
    page = await http.get("/hub/login")
    posting.release()  # this login's POST (and its hash) is on its way
    resp = await http.post(
        "/hub/login",
        data={"username": name, "password": PASSWORD, "_xsrf": xsrf_from(page.text)},
    )
    order.append("login")
    return resp.status_code


async def _other(url: str, order: list[str]) -> int:
    async with httpx.AsyncClient(base_url=url, timeout=120) as http:
        resp = await http.get("/hub/health")
    order.append("other")
    return resp.status_code


def test_a_login_storm_hashes_in_workers_and_other_requests_go_first(hub: RunningHub) -> None:
    order: list[str] = []

    async def storm() -> tuple[list[int], list[int]]:
        clients = [httpx.AsyncClient(base_url=hub.url, timeout=120) for _ in MEMBERS]
        try:
            posting = asyncio.Semaphore(0)
            logins = [
                asyncio.create_task(_login(c, n, order, posting))
                for c, n in zip(clients, MEMBERS, strict=True)
            ]
            for _ in MEMBERS:  # every login has sent its form: the hashes queue in the pool
                await posting.acquire()
            await asyncio.sleep(0.05)
            others = [await _other(hub.url, order) for _ in range(3)]
            return list(await asyncio.gather(*logins)), others
        finally:
            for client in clients:
                await client.aclose()

    statuses, others = asyncio.run(storm())
    assert statuses == [302] * len(MEMBERS)
    assert others == [200, 200, 200]
    # three requests one after another were answered before the storm's last login
    assert order.index("other") < len(order) - 1 and order[-1] == "login"
    assert order.count("other") == 3
    assert order[: order.index("other")].count("login") < len(MEMBERS)
    workers = [
        p
        for p in psutil.Process(hub.process.pid).children(recursive=True)
        if any(part.endswith("hash_worker.py") for part in p.cmdline())
    ]
    assert 1 <= len(workers) <= core_count()  # the hashes ran in the pool, sized to the cores
