"""Failed-login throttling: lock a username, and a client address, out after repeated failures.

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

    def reset(self, key: str) -> None:
        self._records.pop(key, None)


class LoginThrottle:
    """Per-user and per-address lock-outs for one authenticator."""

    def __init__(
        self,
        max_failures: int,
        lockout: float,
        max_failures_per_ip: int | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        per_ip = max_failures_per_ip if max_failures_per_ip is not None else 4 * max_failures
        self.users = FailureCounter(max_failures, lockout, clock)
        self.addresses = FailureCounter(per_ip, lockout, clock)

    def locked(self, username: str, address: str) -> bool:
        return self.users.locked(username) or self.addresses.locked(address)

    def failure(self, username: str, address: str) -> None:
        self.users.failure(username)
        self.addresses.failure(address)

    def success(self, username: str) -> None:
        """A correct password clears the user's count (the address count decays on its own)."""
        self.users.reset(username)
