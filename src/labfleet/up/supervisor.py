"""Run the hub as a supervised child: start, wait healthy, restart on crash, stop cleanly.

The hub runs in its own session so a terminal Ctrl-C reaches only us; we then
record which servers were running (to resume them next time) before asking
the hub to shut down, which stops servers and the proxy it started.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import labfleet.hub
from labfleet.hub.settings import DEFAULT_HUB_PORT, cgroup_parent_for
from labfleet.ops.migrate import prepare_hub_start
from labfleet.ops.target import locate
from labfleet.runtime import Runtime
from labfleet.secrets import HubSecrets
from labfleet.spawn import server_env
from labfleet.spawn.accounts import remove_platform_leftovers
from labfleet.spawn.limits.platform import parent_dirs
from labfleet.tls.probe import healthy_over_https
from labfleet.up import (
    components,
    datadir,
    hublog,
    instance,
    orphans,
    record,
    resume,
    service_tokens,
)
from labfleet.up.hubapi import HubAPI, is_healthy

Say = Callable[[str], None]


@dataclass
class Supervisor:
    runtime: Runtime
    secrets: HubSecrets
    config_path: Path | None
    say: Say = print
    start_timeout: float = 90
    max_restarts: int = 5  # within 5 minutes before restarts back off
    backoff_cap: float = 60
    scheme: str = "http"  # https with `tls:` (the proxy terminates it)
    _stop: threading.Event = field(default_factory=threading.Event)
    _proc: subprocess.Popen[bytes] | None = None
    _reloading: bool = False
    _log_stop: threading.Event = field(default_factory=threading.Event)
    _log_follower: threading.Thread | None = None

    @property
    def public_url(self) -> str:
        host = "localhost" if self.runtime.ip in ("0.0.0.0", "127.0.0.1") else self.runtime.ip  # noqa: S104
        return f"{self.scheme}://{host}:{self.runtime.port}/"

    @property
    def api(self) -> HubAPI:
        port = self.runtime.hub_port or DEFAULT_HUB_PORT
        return HubAPI(f"http://127.0.0.1:{port}/hub/api", self.secrets.supervisor_token)

    def _health_url(self) -> str:
        return f"{self.scheme}://127.0.0.1:{self.runtime.port}/hub/health"

    def _spawn_hub(self) -> subprocess.Popen[bytes]:
        env = dict(os.environ)
        env.update(self.runtime.to_env())
        env["LABFLEET_CONFIG"] = str(self.config_path.resolve()) if self.config_path else ""
        entry = Path(labfleet.hub.__file__).with_name("jupyterhub_config.py")
        log_path = hublog.hub_log_path(self.runtime.logs_dir)
        with hublog.open_hub_log(self.runtime.logs_dir) as log:  # `labfleet logs hub` reads it
            if self._log_follower is None:
                start = log_path.stat().st_size
                self._log_follower = hublog.follow_to_terminal(log_path, self._log_stop, start)
            return subprocess.Popen(
                [sys.executable, "-m", "jupyterhub", "-f", str(entry)],
                cwd=self.runtime.data_dir,
                env=env,
                start_new_session=True,
                stdout=log,
                stderr=subprocess.STDOUT,
            )

    def _wait_healthy(self, proc: subprocess.Popen[bytes]) -> bool:
        deadline = time.monotonic() + self.start_timeout
        while time.monotonic() < deadline and not self._stop.is_set():
            if proc.poll() is not None:
                return False
            if not self._is_our_hub(proc):
                time.sleep(0.2)  # an older hub may still answer: health must be our child's
                continue
            if (healthy_over_https if self.scheme == "https" else is_healthy)(self._health_url()):
                return True
            time.sleep(0.2)
        return False

    def _is_our_hub(self, proc: subprocess.Popen[bytes]) -> bool:
        try:
            return int((self.runtime.state_dir / "jupyterhub.pid").read_text()) == proc.pid
        except (OSError, ValueError):
            return False

    def _known_servers(self, attempts: int = 20) -> set[str]:
        """The servers the hub believes in; retried, since a sweep skipped is an orphan kept."""
        for attempt in range(attempts):
            try:
                return orphans.known_slugs(self.api.active_servers())
            except OSError as exc:
                if attempt == attempts - 1 or self._stop.wait(min(5.0, 0.5 * 2**attempt)):
                    raise
                self.say(f"warning: could not list servers to look for orphans ({exc}); retrying")
        raise AssertionError("unreachable")

    def _stop_orphans(self) -> None:
        groups = parent_dirs(cgroup_parent_for(self.runtime.data_dir))
        try:
            stopped = orphans.sweep(self.runtime.state_dir / "servers", groups, self._known_servers)
        except OSError as exc:
            self.say(f"warning: could not list servers to look for orphans: {exc}")
            return
        for slug in stopped:
            self.say(f"stopped orphaned server process {slug} (left by an interrupted hub)")

    def _revoke_service_tokens(self) -> None:
        """No hub runs now: the tokens its services were given die with it."""
        from sqlalchemy.exc import SQLAlchemyError

        try:
            db_url = locate(self.runtime.data_dir, self.config_path).db_url
            service_tokens.revoke_startup_tokens(db_url)
        except (SQLAlchemyError, OSError, ValueError) as exc:
            self.say(f"warning: could not revoke the services' old API tokens: {exc}")

    def request_stop(self, *_: object) -> None:
        self._stop.set()

    def request_reload(self, *_: object) -> None:
        """SIGHUP (``labfleet reload``): restart only the hub, which resumes users' servers."""
        self.config_path = record.reload_config(self.runtime.data_dir, self.config_path)
        if self._proc is not None and self._proc.poll() is None:
            self._reloading = True
            os.kill(self._proc.pid, signal.SIGKILL)  # no cleanup: servers and proxy stay

    def run(self, on_ready: Callable[[], None] | None = None) -> int:
        """Run until SIGINT/SIGTERM; returns the process exit code."""
        try:
            lock = instance.acquire(self.runtime.data_dir, self.runtime.state_dir)
        except instance.AlreadyRunning as exc:
            self.say(f"error: {exc}")
            return 1
        try:
            left = instance.stop_leftover_hub(self.runtime.state_dir)
            if left:
                self.say(f"stopped the hub (pid {left}) left by a previous labfleet up that died")
            return self._run(on_ready)
        finally:
            instance.release(lock)

    def _run(self, on_ready: Callable[[], None] | None) -> int:
        signal.signal(signal.SIGINT, self.request_stop)
        signal.signal(signal.SIGTERM, self.request_stop)
        signal.signal(signal.SIGHUP, self.request_reload)
        restarts: list[float] = []
        first = True
        server_env.prepare_for_platform(self.config_path, self.say)  # once per host: minutes
        while not self._stop.is_set():
            if not prepare_hub_start(self.runtime.data_dir, self.config_path, self.say):
                return 1  # a schema upgrade failed or was interrupted: never start on it
            self._revoke_service_tokens()
            self._proc = proc = self._spawn_hub()
            instance.record_hub(self.runtime.state_dir, proc.pid)
            components.write(self.runtime.state_dir, "hub", "starting", f"pid {proc.pid}")
            if not self._wait_healthy(proc):
                if self._stop.is_set():
                    break
                log = self.runtime.logs_dir / "hub.log"
                self.say(f"error: the hub did not become healthy; see its log above ({log})")
                self._terminate(proc)
                record.clear_record(self.runtime.data_dir)
                self._end_log_follower()
                return 1
            datadir.protect_private(self.runtime.data_dir)  # a new hub DB is created 0644
            components.write(self.runtime.state_dir, "hub", "up", f"pid {proc.pid}")
            self._stop_orphans()
            if first:
                record.write_record(self.runtime, self.public_url, self.config_path)
                self.say(f"labfleet is up at {self.public_url}  (Ctrl-C stops it)")
                if on_ready:
                    on_ready()
                notes: list[str] = []
                count = resume.resume(self.api, self.runtime.state_dir, notes)
                for note in notes:
                    self.say(note)
                if count:
                    self.say(f"resumed {count} server(s) that were running at the last stop")
                first = False
            while not self._stop.wait(0.5):
                if proc.poll() is not None:
                    break
            if self._stop.is_set():
                break
            if self._reloading:
                self._reloading = False
                self.say("reloading the config: restarting the hub (servers keep running)")
                continue
            now = time.monotonic()
            restarts = [t for t in restarts if now - t < 300] + [now]
            reason = f"the hub exited with {proc.returncode}"
            if len(restarts) > self.max_restarts:
                # a crash loop: back off (capped) instead of leaving the platform unsupervised
                delay = min(self.backoff_cap, 2.0 ** (len(restarts) - self.max_restarts))
                components.write(
                    self.runtime.state_dir, "hub", "down", f"{reason}; retrying in {delay:.0f} s"
                )
                self.say(f"{reason} again; the hub keeps exiting, retrying in {delay:.0f} s")
                if self._stop.wait(delay):
                    break
                continue
            components.write(self.runtime.state_dir, "hub", "restarting", reason)
            self.say(f"{reason}; restarting it (servers keep running)")
        self._shutdown()
        instance.forget_hub(self.runtime.state_dir)
        components.write(self.runtime.state_dir, "hub", "stopped", "labfleet up was stopped")
        record.clear_record(self.runtime.data_dir)
        self._end_log_follower()
        return 0

    def _end_log_follower(self) -> None:
        self._log_stop.set()
        if self._log_follower is not None:
            self._log_follower.join(5)

    def _shutdown(self) -> None:
        proc = self._proc
        if proc is None or proc.poll() is not None:
            return
        try:
            count = resume.record(self.api, self.runtime.state_dir)
            if count:
                self.say(f"stopping {count} running server(s); they resume at the next start")
        except OSError as exc:
            self.say(f"warning: could not record running servers: {exc}")
        self.say("stopping the hub, the proxy and users' servers…")
        self._terminate(proc)
        remove_platform_leftovers(self.runtime.data_dir)  # servers are stopped: no cgroups left
        self.say("stopped.")

    @staticmethod
    def _terminate(proc: subprocess.Popen[bytes], timeout: float = 60) -> None:
        if proc.poll() is not None:
            return
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
