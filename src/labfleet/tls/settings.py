"""Pure: what ``tls:`` changes in the hub's settings (https bind URL, the proxy's flags)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from labfleet.config.tls import TLSSection
from labfleet.tls.store import served_files


def proxy_tls_flags(tls: TLSSection) -> list[str]:
    """labfleet-proxy only: reload the files when they change, send HSTS."""
    return [
        "--ssl-reload-interval",
        str(int(tls.reload_interval * 1000)),
        "--hsts-max-age",
        str(tls.hsts_max_age),
    ]


def apply_tls(
    settings: dict[str, dict[str, Any]], tls: TLSSection, data_dir: Path, *, labfleet_proxy: bool
) -> None:
    """JupyterHub passes ``ssl_cert``/``ssl_key`` to the proxy it starts as --ssl-*."""
    cert, key = served_files(tls, data_dir)
    hub = settings.setdefault("JupyterHub", {})
    hub["ssl_cert"] = str(cert)
    hub["ssl_key"] = str(key)
    bind = hub.get("bind_url", "")
    if bind.startswith("http://"):
        hub["bind_url"] = "https://" + bind[len("http://") :]
    if labfleet_proxy:
        proxy = settings.setdefault("ConfigurableHTTPProxy", {})
        proxy["command"] = [*proxy.get("command", []), *proxy_tls_flags(tls)]
