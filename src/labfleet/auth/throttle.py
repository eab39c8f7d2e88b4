"""Failed-login throttling that never lets one client lock out another's correct password.

Three counters, each answering a different attack:

* **(account, address) pairs** are locked after ``max_failures``: one client
  guessing one account is stopped, and only that client.
* **addresses** are locked after ``max_failures_per_ip``: one client spraying
  many names is stopped, and only that client.
* **accounts** get an exponential *delay* (never a refusal) once their
  failures from all addresses pass ``max_failures``: a guesser using many
  addresses is slowed down, while the owner, from their own address, still
  signs in with the right password after at most ``backoff_max`` seconds.

The address is the real client address (see :mod:`labfleet.auth.client_address`),
so behind a reverse proxy every client is still counted on its own.

Keys are counted whether or not the account exists (the caller passes the
canonical name it was given), so a lock-out says nothing about which
accounts exist. State lives in the hub process: a restart forgets it, which
is acceptable for a throttle and avoids a write per failed attempt.
The table is bounded, so spraying random names cannot exhaust memory.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass


@dataclass
class _Record:
    failures: int
    first: float
    locked_until: float = 0.0


class FailureCounter:
    """Counts failures per key inside a window; ``max_failures`` of them lock the key out."""

    def __init__(
        self,
        max_failures: int,
        lockout: float,
        clock: Callable[[], float] = time.monotonic,
        max_keys: int = 100_000,
    ) -> None:
        if max_failures < 1 or lockout <= 0:
            raise ValueError("max_failures must be >= 1 and lockout > 0")
        self.max_failures = max_failures
        self.lockout = lockout
        self._clock = clock
        self._max_keys = max_keys
        self._records: OrderedDict[str, _Record] = OrderedDict()

    def _current(self, key: str, now: float) -> _Record | None:
        record = self._records.get(key)
        if record is None:
            return None
        locked = record.locked_until > 0
        expired_lock = locked and now >= record.locked_until
        stale = not locked and now - record.first >= self.lockout
        if expired_lock or stale:
            del self._records[key]
            return None
        return record

    def locked(self, key: str) -> bool:
        now = self._clock()
        record = self._current(key, now)
        return record is not None and record.locked_until > now

    def failure(self, key: str) -> bool:
        """Record a failure; True when the key is (now) locked out."""
        now = self._clock()
        record = self._current(key, now)
        if record is None:
            record = _Record(failures=0, first=now)
            self._records[key] = record
            while len(self._records) > self._max_keys:
                self._records.popitem(last=False)
        self._records.move_to_end(key)
        record.failures += 1
        if record.failures >= self.max_failures and not record.locked_until:
            record.locked_until = now + self.lockout
        return record.locked_until > now

    def count(self, key: str) -> int:
        """Failures of ``key`` in the current window."""
        record = self._current(key, self._clock())
        return 0 if record is None else record.failures

    def reset(self, key: str) -> None:
        self._records.pop(key, None)


@dataclass(frozen=True)
class Decision:
    """What the login path does with one attempt: refuse it, or run it after ``delay`` s."""

    locked: bool
    delay: float = 0.0


class LoginThrottle:
    """Pair and address lock-outs plus per-account backoff for one authenticator."""

    def __init__(
        self,
        max_failures: int,
        lockout: float,
        max_failures_per_ip: int | None = None,
        clock: Callable[[], float] = time.monotonic,
        backoff_base: float = 0.25,
        backoff_max: float = 5.0,
    ) -> None:
        per_ip = max_failures_per_ip if max_failures_per_ip is not None else 4 * max_failures
        self.max_failures = max_failures
        self.backoff_base = backoff_base
        self.backoff_max = backoff_max
        self.pairs = FailureCounter(max_failures, lockout, clock)
        self.addresses = FailureCounter(per_ip, lockout, clock)
        # counts only: its "lock" threshold is unreachable, the delay is computed from the count
        self.accounts = FailureCounter(2**31, lockout, clock)

    @staticmethod
    def pair_key(username: str, address: str) -> str:
        return f"{username}\x00{address}"

    def check(self, username: str, address: str) -> Decision:
        if self.pairs.locked(self.pair_key(username, address)) or self.addresses.locked(address):
            return Decision(locked=True)
        failures = self.accounts.count(username)
        if failures < self.max_failures:
            return Decision(locked=False)
        delay = self.backoff_base * 2 ** min(failures - self.max_failures, 32)
        return Decision(locked=False, delay=min(self.backoff_max, delay))

    def locked(self, username: str, address: str) -> bool:
        return self.check(username, address).locked

    def failure(self, username: str, address: str) -> None:
        self.pairs.failure(self.pair_key(username, address))
        self.addresses.failure(address)
        self.accounts.failure(username)

    def success(self, username: str, address: str) -> None:
        """A correct password clears the account and its pair (the address count decays)."""
        self.pairs.reset(self.pair_key(username, address))
        self.accounts.reset(username)
