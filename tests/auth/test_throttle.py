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


def test_user_and_address_locks_are_separate() -> None:
    clock = FakeClock()
    throttle = LoginThrottle(2, 60, max_failures_per_ip=3, clock=clock)
    throttle.failure("bob", "10.0.0.1")
    throttle.failure("bob", "10.0.0.2")
    assert throttle.locked("bob", "10.0.0.9")  # user lock, any address
    assert not throttle.locked("alice", "10.0.0.1")
    throttle.failure("x", "10.0.0.3")
    throttle.failure("y", "10.0.0.3")
    throttle.failure("z", "10.0.0.3")
    assert throttle.locked("alice", "10.0.0.3")  # address lock, any user


def test_success_clears_only_the_user() -> None:
    throttle = LoginThrottle(2, 60, max_failures_per_ip=2, clock=FakeClock())
    throttle.failure("bob", "10.0.0.1")
    throttle.success("bob")
    throttle.failure("bob", "10.0.0.1")
    assert not throttle.users.locked("bob")
    assert throttle.addresses.locked("10.0.0.1")


def test_bad_parameters() -> None:
    with pytest.raises(ValueError):
        FailureCounter(0, 60)
