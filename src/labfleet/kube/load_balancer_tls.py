"""HTTPS on ``access.kind: load-balancer`` (pure): what the proxy and its Service gain.

With ``load_balancer.tls_secret`` labfleet-proxy (or CHP: same flags) serves
the Secret's certificate on its public port and runs a plain listener that
answers every request with a redirect to https; the Service maps 443 to the
TLS port and 80 to the redirect. The Secret is mounted as a volume, so a
renewed certificate (cert-manager rewrites the Secret) reaches the files,
and labfleet-proxy reloads changed files without dropping connections.
"""

from __future__ import annotations

from typing import Any

from labfleet.config.model import FleetConfig

TLS_DIR = "/etc/labfleet/tls"
TLS_VOLUME = "tls"
REDIRECT_PORT = 8080
#: labfleet-proxy looks for a renewed certificate this often (ms).
RELOAD_INTERVAL_MS = 60_000


def _options(config: FleetConfig) -> Any:
    access = config.kubernetes.access
    return access.load_balancer if access.kind == "load-balancer" else None


def serves_tls(config: FleetConfig) -> bool:
    """The proxy itself terminates TLS (a certificate from a Secret)."""
    options = _options(config)
    return options is not None and bool(options.tls_secret)


def public_https(config: FleetConfig) -> bool:
    """Browsers reach a load-balancer fleet over https."""
    options = _options(config)
    return options is not None and options.https


def proxy_args(config: FleetConfig) -> list[str]:
    if not serves_tls(config):
        return []
    args = [
        f"--ssl-cert={TLS_DIR}/tls.crt",
        f"--ssl-key={TLS_DIR}/tls.key",
        f"--redirect-port={REDIRECT_PORT}",
        "--redirect-to=443",
    ]
    if config.proxy.kind == "labfleet":
        args.append(f"--ssl-reload-interval={RELOAD_INTERVAL_MS}")
    return args


def proxy_ports(config: FleetConfig) -> list[dict[str, Any]]:
    if not serves_tls(config):
        return []
    return [{"name": "redirect", "containerPort": REDIRECT_PORT, "protocol": "TCP"}]


def proxy_volume_mounts(config: FleetConfig) -> list[dict[str, Any]]:
    if not serves_tls(config):
        return []
    return [{"name": TLS_VOLUME, "mountPath": TLS_DIR, "readOnly": True}]


def proxy_volumes(config: FleetConfig) -> list[dict[str, Any]]:
    options = _options(config)
    if not serves_tls(config):
        return []
    return [{"name": TLS_VOLUME, "secret": {"secretName": options.tls_secret}}]


def service_ports(config: FleetConfig) -> list[dict[str, Any]] | None:
    """Ports of the public Service, or None for the plain default (80 -> http)."""
    options = _options(config)
    if options is None or not options.https:
        return None
    plain = "redirect" if options.tls_secret else "http"
    return [
        {"name": "https", "port": 443, "targetPort": "http", "protocol": "TCP"},
        {"name": "http", "port": 80, "targetPort": plain, "protocol": "TCP"},
    ]


def service_annotations(config: FleetConfig) -> dict[str, str]:
    options = _options(config)
    return dict(options.annotations) if options is not None else {}


def policy_ports(config: FleetConfig) -> list[dict[str, Any]]:
    """Extra public ports of the proxy's NetworkPolicy (the redirect listener)."""
    if not serves_tls(config):
        return []
    return [{"port": REDIRECT_PORT, "protocol": "TCP"}]
