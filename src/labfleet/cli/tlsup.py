"""``labfleet up`` with ``tls:``: the HTTP listener and certificate first, then the platform."""

from __future__ import annotations

from collections.abc import Callable

from labfleet.config.tls import TLSSection
from labfleet.tls.issue import IssuanceFailed
from labfleet.tls.service import TLSService
from labfleet.up.supervisor import Supervisor

EXIT_TLS = 1


def run_with_tls(
    tls: TLSSection,
    supervisor: Supervisor,
    announce: Callable[[], None],
    say: Callable[[str], None],
) -> int:
    runtime = supervisor.runtime
    service = TLSService(tls, runtime.data_dir, runtime.ip, runtime.port, say=say)
    try:
        service.start()
    except IssuanceFailed as exc:
        say(f"error: could not get a certificate: {exc.reason}")
        say("error: not starting without HTTPS (fix the cause above and run labfleet up again)")
        service.stop()
        return EXIT_TLS
    except OSError as exc:
        say(f"error: HTTPS cannot start: {exc}")
        service.stop()
        return EXIT_TLS
    try:
        return supervisor.run(on_ready=announce)
    finally:
        service.stop()
