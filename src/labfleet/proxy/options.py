"""Typed proxy options: the CHP command line as a frozen dataclass."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class TLSFiles:
    """Key, certificate and CA files for one side, plus client-cert policy."""

    key: str | None = None
    cert: str | None = None
    ca: str | None = None
    request_cert: bool = False
    reject_unauthorized: bool = False

    @property
    def enabled(self) -> bool:
        return bool(self.key and self.cert)


@dataclass(frozen=True)
class ProxyOptions:
    ip: str = ""
    port: int = 8000
    socket: str | None = None
    api_ip: str = "localhost"
    api_port: int | None = None
    api_socket: str | None = None
    metrics_ip: str = ""
    metrics_port: int | None = None
    public_tls: TLSFiles = field(default_factory=TLSFiles)
    api_tls: TLSFiles = field(default_factory=TLSFiles)
    client_tls: TLSFiles = field(default_factory=TLSFiles)
    insecure: bool = False
    default_target: str | None = None
    error_target: str | None = None
    error_path: str | None = None
    host_routing: bool = False
    x_forward: bool = True
    prepend_path: bool = True
    include_prefix: bool = True
    change_origin: bool = False
    custom_headers: tuple[tuple[str, str], ...] = ()
    log_level: str = "info"
    timeout_s: float | None = None
    proxy_timeout_s: float | None = None
    keep_alive_timeout_s: float = 5.0
    header_timeout_s: float = 60.0
    upstream_idle_timeout_s: float = 15.0
    body_timeout_s: float = 60.0
    connect_timeout_s: float = 10.0
    websocket_idle_timeout_s: float = 300.0
    max_connections_per_target: int = 256
    max_idle_per_target: int = 64
    max_connections_per_ip: int = 256
    trusted_proxies: tuple[str, ...] = ()
    shutdown_timeout_s: float = 25.0
    pid_file: str | None = None
    redirect_port: int | None = None
    redirect_to: int | None = None
    # re-read --ssl-cert/--ssl-key when they change (0: never); new handshakes get them
    ssl_reload_interval_s: float = 0.0
    # Strict-Transport-Security on responses over https (None: not sent)
    hsts_max_age: int | None = None
    workers: int = 1
    auth_token: str = ""

    @property
    def api_port_effective(self) -> int:
        return self.api_port if self.api_port is not None else self.port + 1
