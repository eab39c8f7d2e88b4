"""The served certificate as Prometheus gauges, for node_exporter's textfile collector.

Operators alert on certificate expiry (issue 15) without a blackbox probe from
outside: ``labfleet up`` keeps ``state/metrics/labfleet_tls.prom`` current (at
start, after every renewal attempt, and whenever the files change), next to
the backup gauges in the same folder.
"""

from __future__ import annotations

import os
from pathlib import Path

from labfleet.tls.certinfo import CertSummary

TLS_PROM = "labfleet_tls.prom"


def _gauge(name: str, doc: str, value: float) -> str:
    return f"# HELP {name} {doc}\n# TYPE {name} gauge\n{name} {value:.0f}\n"


def certificate_metrics(summary: CertSummary | None, renewal_failed: bool) -> str:
    """Pure: the gauges for the certificate being served (``None``: none readable)."""
    text = _gauge(
        "labfleet_tls_certificate_readable",
        "1 when the certificate labfleet serves could be read.",
        1 if summary is not None else 0,
    )
    if summary is not None:
        text += _gauge(
            "labfleet_tls_certificate_expiry_timestamp_seconds",
            "When the served certificate expires (alert on expiry minus time()).",
            summary.not_after.timestamp(),
        )
        text += _gauge(
            "labfleet_tls_certificate_start_timestamp_seconds",
            "When the served certificate became valid.",
            summary.not_before.timestamp(),
        )
    text += _gauge(
        "labfleet_tls_renewal_failing",
        "1 while the last ACME renewal attempt failed.",
        1 if renewal_failed else 0,
    )
    return text


def write_certificate_metrics(metrics_dir: Path, text: str) -> None:
    """Replace the textfile in one rename, so the collector never reads half of it."""
    metrics_dir.mkdir(parents=True, exist_ok=True)
    target = metrics_dir / TLS_PROM
    partial = target.with_name(f".{TLS_PROM}.{os.getpid()}")
    partial.write_text(text)
    partial.chmod(0o644)
    partial.replace(target)
