"""Failure throttling with an injected clock (no sleeping, no timing assertions)."""

from __future__ import annotations

import pytest

from labfleet.auth.throttle import FailureCounter, LoginThrottle


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_locks_after_max_failures_and_unlocks_after_lockout() -> None:
    clock = FakeClock()
    counter = FailureCounter(3, 60, clock)
    assert not counter.failure("bob")
    assert not counter.failure("bob")
    assert counter.failure("bob")
    assert counter.locked("bob")
    clock.now += 59
    assert counter.locked("bob")
    clock.now += 2
    assert not counter.locked("bob")
    assert not counter.failure("bob")


def test_failures_outside_the_window_are_forgotten() -> None:
    clock = FakeClock()
    counter = FailureCounter(3, 60, clock)
    counter.failure("bob")
    counter.failure("bob")
    clock.now += 61
    assert not counter.failure("bob")
    assert not counter.locked("bob")


def test_reset_clears_a_count() -> None:
    counter = FailureCounter(2, 60, FakeClock())
    counter.failure("bob")
    counter.reset("bob")
    assert not counter.failure("bob")


def test_table_is_bounded() -> None:
    counter = FailureCounter(2, 60, FakeClock(), max_keys=100)
    for index in range(1000):
        counter.failure(f"name{index}")
    assert len(counter._records) == 100


def test_failures_from_one_address_never_lock_out_another_address() -> None:
    """Issue 10 item 6: 20+ wrong passwords from A; the right one from B still gets in."""
    clock = FakeClock()
    throttle = LoginThrottle(5, 300, max_failures_per_ip=20, clock=clock)
    for _ in range(25):
        throttle.failure("bob", "10.0.0.1")
    assert throttle.check("bob", "10.0.0.1").locked  # the attacker is refused
    decision = throttle.check("bob", "10.0.0.2")
    assert not decision.locked  # the owner elsewhere is not
    assert 0 < decision.delay <= throttle.backoff_max  # only slowed down, boundedly


def test_a_flood_for_many_accounts_locks_only_its_own_address() -> None:
    clock = FakeClock()
    throttle = LoginThrottle(5, 300, max_failures_per_ip=20, clock=clock)
    for index in range(500):
        throttle.failure(f"user{index}", "10.0.0.66")
    assert throttle.check("alice", "10.0.0.66").locked
    for index in (0, 7, 499):
        assert not throttle.check(f"user{index}", "10.0.0.2").locked
    assert not throttle.check("alice", "10.0.0.2").locked


def test_pair_lock_after_max_failures_for_one_account_from_one_address() -> None:
    clock = FakeClock()
    throttle = LoginThrottle(2, 60, max_failures_per_ip=10, clock=clock)
    throttle.failure("bob", "10.0.0.1")
    assert not throttle.check("bob", "10.0.0.1").locked
    throttle.failure("bob", "10.0.0.1")
    assert throttle.check("bob", "10.0.0.1").locked
    assert not throttle.check("alice", "10.0.0.1").locked  # other accounts from A: fine
    clock.now += 61
    assert not throttle.check("bob", "10.0.0.1").locked


def test_account_backoff_grows_and_is_capped() -> None:
    clock = FakeClock()
    throttle = LoginThrottle(3, 600, max_failures_per_ip=1000, clock=clock, backoff_max=4.0)
    delays = []
    for index in range(12):
        delays.append(throttle.check("bob", "10.0.9.9").delay)
        throttle.failure("bob", f"10.0.1.{index}")
    assert delays[:3] == [0, 0, 0]
    assert delays == sorted(delays)
    assert max(delays) == 4.0


def test_success_clears_the_account_and_pair_but_not_the_address() -> None:
    throttle = LoginThrottle(2, 60, max_failures_per_ip=2, clock=FakeClock())
    throttle.failure("bob", "10.0.0.1")
    throttle.success("bob", "10.0.0.1")
    throttle.failure("bob", "10.0.0.1")
    assert not throttle.pairs.locked(LoginThrottle.pair_key("bob", "10.0.0.1"))
    assert throttle.addresses.locked("10.0.0.1")


def test_bad_parameters() -> None:
    with pytest.raises(ValueError):
        FailureCounter(0, 60)
