"""Password hashing in worker processes sized to the cores, off the hub's event loop.

One scrypt costs ~0.1 CPU-second and 32 MiB. Done on the event loop it stalls
every request; done in the default thread pool it competes with everything
else JupyterHub runs there, at the hub's own priority. Here each hash runs in
one of ``size`` small worker processes (:mod:`labfleet.auth.hash_worker`,
standard library only, niced), so logins are bounded by ``cores ÷ CPU-s per
hash`` while the hub's loop keeps answering other requests first.

:meth:`HashPool.derive` is synchronous and thread-safe: a login thread hands
its hash to an idle worker and sleeps on the pipe (no GIL held) until the key
comes back. A worker that dies or answers garbage is discarded and replaced
on the next call; the caller gets :class:`labfleet.auth.hashing.OffloadError`
and derives in-process instead, so a broken pool never breaks sign-in.
"""

from __future__ import annotations

import atexit
import base64
import contextlib
import json
import math
import os
import queue
import subprocess
import sys
import threading
from dataclasses import dataclass, field
from pathlib import Path

from labfleet.auth.hashing import OffloadError, ScryptParams

WORKER_SCRIPT = Path(__file__).with_name("hash_worker.py")
#: CPU priority of the workers relative to the hub (higher is lower priority);
#: ``LABFLEET_HASH_NICENESS`` in the hub's environment overrides it (the benchmark's knob)
DEFAULT_NICENESS = 5


def niceness_from_env(environ: dict[str, str] | None = None) -> int:
    value = (os.environ if environ is None else environ).get("LABFLEET_HASH_NICENESS", "")
    try:
        return max(0, min(19, int(value)))
    except ValueError:
        return DEFAULT_NICENESS


def core_count(cgroup_root: Path = Path("/sys/fs/cgroup")) -> int:
    """The cores this process may use: its affinity mask, capped by a CPU quota.

    In a Kubernetes pod with ``limits.cpu: 2`` the affinity mask still lists
    every core of the node; the quota (cgroup v2 ``cpu.max``, v1
    ``cpu.cfs_quota_us``) is what the hub really gets.
    """
    try:
        cores = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cores = os.cpu_count() or 1
    quota = cpu_quota(cgroup_root)
    if quota is not None:
        cores = min(cores, math.ceil(quota))
    return max(1, cores)


def cpu_quota(cgroup_root: Path = Path("/sys/fs/cgroup")) -> float | None:
    """CPUs allowed by the quota of this process's cgroup at the mount root (None: no quota)."""
    try:
        quota, period = (cgroup_root / "cpu.max").read_text().split()[:2]
        return None if quota == "max" else int(quota) / int(period)
    except (OSError, ValueError):
        pass
    try:
        quota_us = int((cgroup_root / "cpu" / "cpu.cfs_quota_us").read_text())
        period_us = int((cgroup_root / "cpu" / "cpu.cfs_period_us").read_text())
    except (OSError, ValueError):
        return None
    return None if quota_us <= 0 or period_us <= 0 else quota_us / period_us


@dataclass
class _Worker:
    proc: subprocess.Popen[bytes]

    def ask(self, line: bytes) -> bytes:
        stdin, stdout = self.proc.stdin, self.proc.stdout
        if stdin is None or stdout is None:
            raise OffloadError("hash worker has no pipes")
        try:
            stdin.write(line)
            stdin.flush()
            reply = stdout.readline()
        except (OSError, ValueError) as exc:
            raise OffloadError(f"hash worker {self.proc.pid} failed: {exc}") from exc
        if not reply:
            raise OffloadError(f"hash worker {self.proc.pid} exited")
        return reply

    def stop(self) -> None:
        for pipe in (self.proc.stdin, self.proc.stdout):
            with contextlib.suppress(OSError):
                if pipe is not None:
                    pipe.close()
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


@dataclass
class HashPool:
    """``size`` scrypt worker processes, started on first use."""

    size: int = field(default_factory=core_count)
    niceness: int = DEFAULT_NICENESS
    _idle: queue.SimpleQueue[_Worker] = field(default_factory=queue.SimpleQueue, init=False)
    _all: list[_Worker] = field(default_factory=list, init=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False)
    _closed: bool = field(default=False, init=False)
    #: hashes answered by a worker (for tests and the benchmark's profile)
    served: int = field(default=0, init=False)

    def __post_init__(self) -> None:
        self.size = max(1, self.size)

    @property
    def pids(self) -> list[int]:
        with self._lock:
            return [w.proc.pid for w in self._all]

    def _spawn(self) -> _Worker:
        proc = subprocess.Popen(
            [sys.executable, "-I", "-S", str(WORKER_SCRIPT), str(self.niceness)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            close_fds=True,
        )
        return _Worker(proc)

    def _take(self) -> _Worker:
        try:
            return self._idle.get_nowait()
        except queue.Empty:
            pass
        with self._lock:
            if self._closed:
                raise OffloadError("hash pool is closed")
            if len(self._all) < self.size:
                worker = self._spawn()
                self._all.append(worker)
                return worker
        return self._idle.get()  # all busy: wait for one to come back

    def _discard(self, worker: _Worker) -> None:
        with self._lock:
            if worker in self._all:
                self._all.remove(worker)
        worker.stop()

    def derive(self, secret: bytes, salt: bytes, params: ScryptParams, dklen: int) -> bytes:
        """scrypt(secret, salt) computed by a worker process (blocks the calling thread)."""
        request = {
            "secret": base64.b64encode(secret).decode("ascii"),
            "salt": base64.b64encode(salt).decode("ascii"),
            "n": params.n,
            "r": params.r,
            "p": params.p,
            "maxmem": params.maxmem,
            "dklen": dklen,
        }
        line = json.dumps(request).encode("ascii") + b"\n"
        worker = self._take()
        try:
            reply = json.loads(worker.ask(line))
            refused = reply.get("error")
            key = b"" if refused else base64.b64decode(reply["key"], validate=True)
        except (OffloadError, ValueError, KeyError, TypeError, AttributeError) as exc:
            self._discard(worker)
            raise OffloadError(f"hash worker gave no key: {exc}") from exc
        if self._closed:
            self._discard(worker)
        else:
            self._idle.put(worker)
        if refused:  # e.g. parameters scrypt rejects: the in-process call raises the real error
            raise OffloadError(f"hash worker refused: {refused}")
        with self._lock:
            self.served += 1
        if len(key) != dklen:
            raise OffloadError("hash worker returned a key of the wrong length")
        return key

    def close(self) -> None:
        """Stop every worker (idle ones now; busy ones when they hand their key back)."""
        with self._lock:
            self._closed = True
            workers = list(self._all)
            self._all.clear()
        for worker in workers:
            worker.stop()


_shared: HashPool | None = None
_shared_lock = threading.Lock()


def shared_pool(size: int = 0, niceness: int = DEFAULT_NICENESS) -> HashPool:
    """The process's one pool (``size`` 0: one worker per core), stopped at exit."""
    global _shared
    with _shared_lock:
        if _shared is None:
            _shared = HashPool(size or core_count(), niceness)
            atexit.register(_shared.close)
        return _shared
