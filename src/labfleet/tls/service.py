"""TLS for a running ``labfleet up``: first certificate, HTTP listener, renewal thread.

Start order matters: the plain-HTTP listener comes up first (ACME validates
through it), then the first certificate is obtained if the store has none
that covers the domains and is not yet due, and only then does the hub (and
the proxy it starts with the files) come up. Renewal writes new files in
place; the proxy picks them up on its own.
"""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from labfleet.config.tls import AcmeSection, TLSSection
from labfleet.tls.certinfo import CertSummary, read_summary
from labfleet.tls.issue import IssuanceFailed, issue
from labfleet.tls.metrics import certificate_metrics, write_certificate_metrics
from labfleet.tls.responder import Challenges, HttpResponder
from labfleet.tls.store import CertStore, served_files

Say = Callable[[str], None]
RETRY_MIN_S = 5.0
RETRY_MAX_S = 3600.0


def current(store: CertStore) -> CertSummary | None:
    try:
        return read_summary(store.cert) if store.key.exists() else None
    except (OSError, ValueError):
        return None


def needs_issuance(summary: CertSummary | None, acme: AcmeSection, now: dt.datetime) -> bool:
    """Pure: no certificate, other names, or past the renewal point."""
    if summary is None or not summary.covers(acme.domains):
        return True
    return now >= summary.renew_at(acme.renew_at)


def seconds_until_renewal(summary: CertSummary, acme: AcmeSection, now: dt.datetime) -> float:
    return max(0.0, (summary.renew_at(acme.renew_at) - now).total_seconds())


def retry_delay(summary: CertSummary | None, now: dt.datetime) -> float:
    """After a failed renewal: a tenth of what is left, within [5 s, 1 h]."""
    if summary is None:
        return RETRY_MIN_S
    left = (summary.not_after - now).total_seconds() / 10
    return min(RETRY_MAX_S, max(RETRY_MIN_S, left))


@dataclass
class TLSService:
    tls: TLSSection
    data_dir: Path
    ip: str
    https_port: int
    say: Say = print
    answers: Challenges = field(default_factory=Challenges)
    _stop: threading.Event = field(default_factory=threading.Event)
    _responder: HttpResponder | None = None
    _renewer: threading.Thread | None = None
    _watcher: threading.Thread | None = None
    _renewal_failed: bool = False

    @property
    def store(self) -> CertStore:
        return CertStore.for_data_dir(self.data_dir)

    def write_metrics(self) -> None:
        """The expiry gauges for what is served now (``state/metrics/labfleet_tls.prom``)."""
        summary = certificate_status(self.tls, self.data_dir)
        try:
            write_certificate_metrics(
                self.data_dir / "state" / "metrics",
                certificate_metrics(summary, self._renewal_failed),
            )
        except OSError as exc:
            self.say(f"warning: could not write the certificate metrics: {exc}")

    def _watch_files(self) -> None:
        """Keep the gauges current as the served files change (rotated certificates)."""
        seen: tuple[float, ...] | None = None
        interval = min(60.0, self.tls.reload_interval)
        while not self._stop.wait(interval):
            cert, key = served_files(self.tls, self.data_dir)
            stamp: tuple[float, ...]
            try:
                stamp = (cert.stat().st_mtime, key.stat().st_mtime)
            except OSError:
                stamp = ()
            if stamp != seen:
                seen = stamp
                self.write_metrics()

    def start(self) -> None:
        """Bind the HTTP port, get a first certificate; raises IssuanceFailed/OSError."""
        self._start_serving()
        self.write_metrics()
        self._watcher = threading.Thread(target=self._watch_files, daemon=True)
        self._watcher.start()

    def _start_serving(self) -> None:
        port = self.tls.redirect_port
        if port is not None:
            self._responder = HttpResponder(self.ip, port, self.https_port, self.answers)
            self._responder.start()
        acme = self.tls.acme
        if acme is None:
            cert, key = served_files(self.tls, self.data_dir)
            for path in (cert, key):
                if not path.is_file():
                    raise OSError(f"tls: {path} does not exist")
            return
        now = dt.datetime.now(dt.UTC)
        if needs_issuance(current(self.store), acme, now):
            names = ", ".join(acme.domains)
            self.say(f"requesting a certificate for {names} from {acme.directory}")
            issue(acme, self.store, self.answers)
            summary = current(self.store)
            if summary is not None:
                self.say(f"certificate: {summary.line()}")
        self._renewer = threading.Thread(target=self._renew_loop, args=(acme,), daemon=True)
        self._renewer.start()

    def _renew_loop(self, acme: AcmeSection) -> None:
        while not self._stop.is_set():
            now = dt.datetime.now(dt.UTC)
            summary = current(self.store)
            if summary is not None and not needs_issuance(summary, acme, now):
                self._stop.wait(min(60.0, seconds_until_renewal(summary, acme, now) + 0.5))
                continue
            try:
                issue(acme, self.store, self.answers)
            except IssuanceFailed as exc:
                self._renewal_failed = True
                self.write_metrics()
                wait = retry_delay(summary, now)
                self.say(f"error: certificate renewal failed: {exc.reason} (retry in {wait:.0f} s)")
                self._stop.wait(wait)
                continue
            self._renewal_failed = False
            self.write_metrics()
            fresh = current(self.store)
            if fresh is not None:
                self.say(f"renewed the certificate: {fresh.line()}")

    def stop(self) -> None:
        self._stop.set()
        for thread in (self._renewer, self._watcher):
            if thread is not None:
                thread.join(10)
        if self._responder is not None:
            self._responder.stop()


def certificate_status(tls: TLSSection | None, data_dir: Path) -> CertSummary | None:
    """For ``labfleet status``: what the proxy serves (None without ``tls:``/files)."""
    if tls is None:
        return None
    cert, _ = served_files(tls, data_dir)
    try:
        return read_summary(cert)
    except (OSError, ValueError):
        return None


def certificate_line(tls: TLSSection | None, data_dir: Path) -> str | None:
    """One ``labfleet status`` line: the served certificate's issuer, names and expiry."""
    if tls is None:
        return None
    summary = certificate_status(tls, data_dir)
    if summary is None:
        cert, _ = served_files(tls, data_dir)
        return f"https: no readable certificate at {cert}"
    return f"https certificate: {summary.line()}"
