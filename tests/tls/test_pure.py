"""Pure pieces of tls: the config section, redirects, renewal timing, hub settings."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from pydantic import ValidationError

from labfleet.config.tls import LETS_ENCRYPT_DIRECTORY, TLSSection
from labfleet.tls.certinfo import CertSummary
from labfleet.tls.responder import redirect_location
from labfleet.tls.service import needs_issuance, retry_delay
from labfleet.tls.settings import apply_tls

ACME = {"acme": {"email": "a@example.org", "domains": ["hub.example.org"]}}


def test_acme_defaults_follow_the_contract() -> None:
    tls = TLSSection.model_validate(ACME)
    assert tls.acme is not None
    assert tls.acme.directory == LETS_ENCRYPT_DIRECTORY
    assert tls.acme.http_port == 80
    assert tls.redirect_port == 80


@pytest.mark.parametrize(
    "bad",
    [
        {},
        {"cert": "/a.pem"},
        {"cert": "a.pem", "key": "/k.pem"},
        {"cert": "/a.pem", "key": "/k.pem", **ACME},
        {"acme": {"email": "a@example.org", "domains": ["*.example.org"]}},
        {"acme": {"email": "a@example.org", "domains": []}},
        {**ACME, "http_port": 8080},
        {**ACME, "bogus": 1},
    ],
)
def test_bad_sections_are_refused(bad: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        TLSSection.model_validate(bad)


def test_redirect_keeps_path_and_refuses_odd_hosts() -> None:
    assert (
        redirect_location("hub.example.org", "/hub/?a=1", 443) == "https://hub.example.org/hub/?a=1"
    )
    assert redirect_location("hub.example.org:80", "/", 8443) == "https://hub.example.org:8443/"
    assert redirect_location("evil.org\r\nSet-Cookie: x", "/", 443) is None
    assert redirect_location("a@b", "/", 443) is None


def test_renewal_point_and_names() -> None:
    tls = TLSSection.model_validate(ACME)
    assert tls.acme is not None
    start = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    cert = CertSummary("CA", ("hub.example.org",), start, start + dt.timedelta(days=90))
    assert not needs_issuance(cert, tls.acme, start + dt.timedelta(days=59))
    assert needs_issuance(cert, tls.acme, start + dt.timedelta(days=61))
    other = CertSummary("CA", ("old.example.org",), start, start + dt.timedelta(days=90))
    assert needs_issuance(other, tls.acme, start)
    assert needs_issuance(None, tls.acme, start)
    assert 5 <= retry_delay(cert, start + dt.timedelta(days=89, hours=23, minutes=59)) <= 3600


def test_hub_settings_serve_https_with_reload_and_hsts(tmp_path: Path) -> None:
    settings = {
        "JupyterHub": {"bind_url": "http://127.0.0.1:8000/"},
        "ConfigurableHTTPProxy": {"command": ["labfleet-proxy"]},
    }
    apply_tls(settings, TLSSection.model_validate(ACME), tmp_path, labfleet_proxy=True)
    hub = settings["JupyterHub"]
    assert hub["bind_url"] == "https://127.0.0.1:8000/"
    assert hub["ssl_cert"] == str(tmp_path / "tls" / "fullchain.pem")
    assert hub["ssl_key"] == str(tmp_path / "tls" / "privkey.pem")
    command = settings["ConfigurableHTTPProxy"]["command"]
    assert command[1:] == ["--ssl-reload-interval", "5000", "--hsts-max-age", "31536000"]


def test_certificate_metrics_for_prometheus() -> None:
    """Issue 15: operators alert on certificate expiry from labfleet's own gauge."""
    from labfleet.tls.metrics import certificate_metrics

    summary = CertSummary(
        "Pebble Intermediate CA",
        ("lab.example",),
        dt.datetime(2026, 1, 1, tzinfo=dt.UTC),
        dt.datetime(2026, 4, 1, tzinfo=dt.UTC),
    )
    text = certificate_metrics(summary, renewal_failed=True)
    expiry = dt.datetime(2026, 4, 1, tzinfo=dt.UTC).timestamp()
    assert f"labfleet_tls_certificate_expiry_timestamp_seconds {expiry:.0f}\n" in text
    assert "# TYPE labfleet_tls_certificate_expiry_timestamp_seconds gauge" in text
    assert "labfleet_tls_renewal_failing 1\n" in text
    missing = certificate_metrics(None, renewal_failed=False)
    assert "labfleet_tls_certificate_readable 0\n" in missing
    assert "expiry_timestamp_seconds " not in missing
