"""Password hashes computed in worker processes: same bytes, other processes, never the loop's pool.

Real worker processes (``hash_worker.py``) and the real scrypt; nothing here
times anything: what is asserted is where the work ran and in what order
things completed.
"""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from labfleet.auth import hashing
from labfleet.auth.accounts import AccountStore
from labfleet.auth.hash_pool import HashPool, core_count, cpu_quota
from labfleet.auth.hashing import (
    OffloadError,
    ScryptParams,
    hash_password,
    offload_to,
    verify_password,
)
from labfleet.auth.password import PasswordAuthenticator

FAST = ScryptParams(n=2**10)


@pytest.fixture
def pool() -> Iterator[HashPool]:
    made = HashPool(size=2)
    try:
        yield made
    finally:
        offload_to(None)
        made.close()


@pytest.fixture(autouse=True)
def _in_process_afterwards() -> Iterator[None]:
    yield
    offload_to(None)


def test_pool_derives_the_same_key_as_in_process(pool: HashPool) -> None:
    plain = hash_password("s3cret-pass", FAST)
    offload_to(pool.derive)
    pooled = hash_password("s3cret-pass", FAST)
    assert verify_password("s3cret-pass", plain)  # made here, checked by a worker
    assert not verify_password("s3cret-pasS", plain)
    assert pool.served == 3
    offload_to(None)
    assert verify_password("s3cret-pass", pooled)  # made by a worker, checked here
    assert pool.pids and os.getpid() not in pool.pids


def test_non_ascii_and_surrogate_passwords_round_trip(pool: HashPool) -> None:
    offload_to(pool.derive)
    for password in ("pässwörd ✓", "tab\tand\nnewline", "\ud800lone"):
        encoded = hash_password(password, FAST)
        offload_to(None)
        assert verify_password(password, encoded)
        offload_to(pool.derive)
        assert verify_password(password, encoded)


def test_workers_are_limited_to_the_pool_size(pool: HashPool) -> None:
    with ThreadPoolExecutor(6) as threads:
        keys = list(
            threads.map(lambda i: pool.derive(b"pw%d" % i, b"salt" * 4, FAST, 32), range(12))
        )
    assert len(set(keys)) == 12
    assert len(pool.pids) <= 2
    assert pool.served == 12


def test_a_killed_worker_is_replaced_and_no_hash_is_lost(pool: HashPool) -> None:
    offload_to(pool.derive)
    encoded = hash_password("pw", FAST)
    (victim,) = pool.pids
    os.kill(victim, signal.SIGKILL)
    assert verify_password("pw", encoded)  # falls back in-process for this one
    assert verify_password("pw", encoded)  # and a fresh worker answers the next
    assert victim not in pool.pids and pool.pids


def test_a_refused_request_raises_offload_error_and_keeps_the_worker(pool: HashPool) -> None:
    bad = ScryptParams(n=2**10, r=8, p=1)
    pool.derive(b"pw", b"s" * 16, bad, 32)
    (worker,) = pool.pids
    with pytest.raises(OffloadError):
        pool.derive(b"pw", b"s" * 16, bad, 0)  # scrypt refuses an empty key
    assert pool.pids == [worker]


class _Refusing(ThreadPoolExecutor):
    """A default executor that records every job handed to it."""

    def __init__(self) -> None:
        super().__init__(1)
        self.jobs: list[str] = []

    def submit(self, fn: Any, /, *args: Any, **kwargs: Any) -> Any:
        self.jobs.append(getattr(fn, "__qualname__", repr(fn)))
        return super().submit(fn, *args, **kwargs)


def _authenticator(tmp_path: Path, **extra: Any) -> PasswordAuthenticator:
    store = AccountStore(tmp_path / "accounts.sqlite", FAST)
    for name in ("alice", "bob", "carol"):
        store.add(name, "password-1")
    return PasswordAuthenticator(accounts_db=str(store.path), scrypt_n=FAST.n, **extra)


def test_logins_hash_in_worker_processes_not_the_default_thread_pool(tmp_path: Path) -> None:
    auth = _authenticator(tmp_path)
    default = _Refusing()

    async def storm() -> list[Any]:
        asyncio.get_running_loop().set_default_executor(default)
        logins = [
            auth.get_authenticated_user(None, {"username": name, "password": pw})
            for name in ("alice", "bob", "carol")
            for pw in ("password-1", "wrong")
        ]
        return list(await asyncio.gather(*logins))

    try:
        results = asyncio.run(storm())
        assert [r["name"] if r else None for r in results] == [
            "alice",
            None,
            "bob",
            None,
            "carol",
            None,
        ]
        assert "AccountStore.verify" not in default.jobs
        assert all("verify" not in job for job in default.jobs)
        assert hashing._offload is not None  # the authenticator routed hashes to its pool
    finally:
        default.shutdown()


def test_a_login_storm_leaves_the_event_loop_answering(tmp_path: Path) -> None:
    """Other work on the loop completes while a storm of real-cost hashes is in flight."""
    store = AccountStore(tmp_path / "accounts.sqlite", FAST)
    store.add("alice", "password-1")
    auth = PasswordAuthenticator(accounts_db=str(store.path))  # production scrypt cost
    order: list[str] = []

    async def login(i: int) -> None:
        await auth.get_authenticated_user(None, {"username": f"u{i}", "password": "x"})
        order.append("login")

    async def other_request() -> None:
        await asyncio.sleep(0)
        order.append("other")

    async def scene() -> None:
        storm = [asyncio.create_task(login(i)) for i in range(8)]
        await asyncio.sleep(0)  # the storm is under way
        await asyncio.gather(*(other_request() for _ in range(5)), *storm)

    asyncio.run(scene())
    assert order[:5] == ["other"] * 5
    assert order.count("login") == 8


def test_in_thread_hashing_can_be_chosen(tmp_path: Path) -> None:
    auth = _authenticator(tmp_path, hash_in_processes=False)
    result = asyncio.run(
        auth.get_authenticated_user(None, {"username": "alice", "password": "password-1"})
    )
    assert result is not None and hashing._offload is None


def test_core_count_is_capped_by_a_cgroup_v2_quota(tmp_path: Path) -> None:
    (tmp_path / "cpu.max").write_text("150000 100000\n")  # 1.5 CPUs, as in a pod limit
    assert cpu_quota(tmp_path) == 1.5
    assert core_count(tmp_path) == min(2, len(os.sched_getaffinity(0)))
    (tmp_path / "cpu.max").write_text("max 100000\n")
    assert cpu_quota(tmp_path) is None


def test_core_count_is_capped_by_a_cgroup_v1_quota(tmp_path: Path) -> None:
    (tmp_path / "cpu").mkdir()
    (tmp_path / "cpu" / "cpu.cfs_quota_us").write_text("100000\n")
    (tmp_path / "cpu" / "cpu.cfs_period_us").write_text("100000\n")
    assert core_count(tmp_path) == 1
    (tmp_path / "cpu" / "cpu.cfs_quota_us").write_text("-1\n")
    assert cpu_quota(tmp_path) is None
