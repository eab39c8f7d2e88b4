"""``labfleet-proxy``: the command line of configurable-http-proxy, in Python.

JupyterHub's ``ConfigurableHTTPProxy`` launches its ``command`` with CHP's
flags; every one of them is accepted here. Flags CHP has that we do not
implement (``--auto-rewrite``, ``--error-path``, …) and flags nobody has
are accepted with a warning, so a JupyterHub upgrade that adds a flag never
stops the proxy from starting.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import sys
from collections.abc import Sequence

from labfleet.proxy.options import ProxyOptions, TLSFiles
from labfleet.proxy.runtime import install_loop, log, setup_logging
from labfleet.proxy.single import serve_single
from labfleet.proxy.trust import parse_networks
from labfleet.proxy.workers import serve_supervisor

TOKEN_ENV = "CONFIGPROXY_AUTH_TOKEN"  # noqa: S105 (a variable name, not a secret)
WORKERS_ENV = "LABFLEET_PROXY_WORKERS"

# CHP flags that are parsed but have no effect here.
_ACCEPTED_NOOP = (
    "--ssl-protocol",
    "--ssl-ciphers",
    "--ssl-dhparam",
    "--protocol-rewrite",
    "--storage-backend",
    "--error-path",
    "--metrics-socket",
)
_ACCEPTED_NOOP_SWITCHES = ("--ssl-allow-rc4", "--auto-rewrite")


def _ms(text: str) -> float:
    return float(text) / 1000.0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="labfleet-proxy",
        description="A CHP-compatible HTTP/websocket reverse proxy for JupyterHub.",
    )
    a = p.add_argument
    a("--ip", default="", help="Public-facing IP of the proxy (default: all)")
    a("--port", type=int, default=8000)
    a("--socket", help="Public-facing Unix socket path (instead of --ip/--port)")
    a("--api-ip", default="localhost")
    a("--api-port", type=int, help="default: --port + 1")
    a("--api-socket")
    for side in ("ssl", "api-ssl", "client-ssl"):
        a(f"--{side}-key")
        a(f"--{side}-cert")
        a(f"--{side}-ca")
        a(f"--{side}-request-cert", action="store_true")
        a(f"--{side}-reject-unauthorized", action="store_true")
    a("--insecure", action="store_true", help="Do not verify targets' certificates")
    a("--default-target", help="Target for requests no route matches")
    a("--error-target", help="Fetch error pages from {error_target}/{code}?url=...")
    a("--redirect-port", type=int, help="Plain-HTTP port that redirects to https")
    a("--redirect-to", type=int, help="https port to redirect to (default: --port)")
    a(
        "--ssl-reload-interval",
        type=_ms,
        default=0.0,
        help="ms: look for a changed --ssl-cert/--ssl-key this often (0: never)",
    )
    a("--hsts-max-age", type=int, help="s: send Strict-Transport-Security over https")
    a("--pid-file")
    a("--no-x-forward", dest="x_forward", action="store_false")
    a("--no-prepend-path", dest="prepend_path", action="store_false")
    a("--no-include-prefix", dest="include_prefix", action="store_false")
    a("--change-origin", action="store_true")
    a("--custom-header", action="append", default=[], help="'Name: value' (repeatable)")
    a("--host-routing", action="store_true")
    a("--metrics-ip", default="")
    a("--metrics-port", type=int, help="Serve unauthenticated /metrics on this port")
    a("--log-level", default="info")
    a("--timeout", type=_ms, help="ms: request head timeout")
    a("--proxy-timeout", type=_ms, help="ms: give up waiting for a target's response")
    a("--keep-alive-timeout", type=_ms, default=5.0, help="ms: idle client keep-alive")
    a("--upstream-idle-timeout", type=_ms, default=15.0, help="ms: idle pooled connections")
    a("--body-timeout", type=_ms, default=60.0, help="ms: request body may stall this long")
    a("--connect-timeout", type=_ms, default=10.0, help="ms: target connect / free pool slot")
    a(
        "--websocket-idle-timeout",
        type=_ms,
        default=300.0,
        help="ms: idle tunnel gets a ping at half, is closed if nothing answers (0: never)",
    )
    a("--max-connections-per-target", type=int, default=256)
    a("--max-connections-per-ip", type=int, default=256, help="per client address (0: no cap)")
    a(
        "--trusted-proxy",
        action="append",
        default=[],
        metavar="CIDR",
        help="peer whose X-Real-Ip/X-Forwarded-* are kept (repeatable)",
    )
    a("--shutdown-timeout", type=_ms, default=25.0, help="ms: drain time on SIGTERM")
    a("--workers", type=int, help=f"worker processes (env {WORKERS_ENV}; default 1)")
    for flag in _ACCEPTED_NOOP:
        a(flag, help=argparse.SUPPRESS)
    for flag in _ACCEPTED_NOOP_SWITCHES:
        a(flag, action="store_true", help=argparse.SUPPRESS)
    return p


def options_from_args(args: argparse.Namespace, token: str) -> ProxyOptions:
    def tls(side: str) -> TLSFiles:
        s = side.replace("-", "_")
        return TLSFiles(
            key=getattr(args, f"{s}_key"),
            cert=getattr(args, f"{s}_cert"),
            ca=getattr(args, f"{s}_ca"),
            request_cert=getattr(args, f"{s}_request_cert"),
            reject_unauthorized=getattr(args, f"{s}_reject_unauthorized"),
        )

    headers = []
    for item in args.custom_header:
        name, sep, value = item.partition(":")
        if not sep or not name.strip():
            raise ValueError(f"--custom-header {item!r} must look like 'Name: value'")
        headers.append((name.strip(), value.strip()))
    workers = args.workers or int(os.environ.get(WORKERS_ENV) or 1)
    if workers < 1:
        raise ValueError("--workers must be at least 1")
    if workers > 1 and args.socket:
        raise ValueError("--workers needs a TCP listener (--ip/--port), not --socket")
    parse_networks(args.trusted_proxy)  # refuse a bad CIDR at start, with its name
    if args.max_connections_per_target < 1:
        raise ValueError("--max-connections-per-target must be at least 1")
    return ProxyOptions(
        ip=args.ip,
        port=args.port,
        socket=args.socket,
        api_ip=args.api_ip,
        api_port=args.api_port,
        api_socket=args.api_socket,
        metrics_ip=args.metrics_ip,
        metrics_port=args.metrics_port,
        public_tls=tls("ssl"),
        api_tls=tls("api-ssl"),
        client_tls=tls("client-ssl"),
        insecure=args.insecure,
        default_target=args.default_target,
        error_target=args.error_target,
        host_routing=args.host_routing,
        x_forward=args.x_forward,
        prepend_path=args.prepend_path,
        include_prefix=args.include_prefix,
        change_origin=args.change_origin,
        custom_headers=tuple(headers),
        log_level=args.log_level,
        timeout_s=args.timeout,
        proxy_timeout_s=args.proxy_timeout,
        keep_alive_timeout_s=args.keep_alive_timeout,
        header_timeout_s=args.timeout or 60.0,
        upstream_idle_timeout_s=args.upstream_idle_timeout,
        body_timeout_s=args.body_timeout,
        connect_timeout_s=args.connect_timeout,
        websocket_idle_timeout_s=args.websocket_idle_timeout,
        max_connections_per_target=args.max_connections_per_target,
        max_connections_per_ip=args.max_connections_per_ip,
        trusted_proxies=tuple(args.trusted_proxy),
        shutdown_timeout_s=args.shutdown_timeout,
        pid_file=args.pid_file,
        redirect_port=args.redirect_port,
        redirect_to=args.redirect_to,
        ssl_reload_interval_s=args.ssl_reload_interval,
        hsts_max_age=args.hsts_max_age,
        workers=workers,
        auth_token=token,
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args, unknown = parser.parse_known_args(argv)
    setup_logging(args.log_level)
    for flag in unknown:
        log.warning("Ignoring unknown option %s", flag)
    for flag in (*_ACCEPTED_NOOP, *_ACCEPTED_NOOP_SWITCHES):
        if getattr(args, flag[2:].replace("-", "_"), None):
            log.warning("Option %s is accepted but not implemented by labfleet-proxy", flag)
    token = os.environ.get(TOKEN_ENV, "")
    if not token:
        log.error("%s is not set: refusing to start an unauthenticated proxy API", TOKEN_ENV)
        return 1
    try:
        opts = options_from_args(args, token)
    except ValueError as exc:
        log.error("%s", exc)
        return 2
    install_loop()
    # Everything imported so far lives as long as the process: keep it out of the
    # cyclic collector's way so collections on the request path stay short.
    gc.collect()
    gc.freeze()
    if opts.workers > 1:
        return asyncio.run(serve_supervisor(opts))
    try:
        return asyncio.run(serve_single(opts))
    except OSError as exc:
        log.error("Cannot listen: %s", exc)
        return 1


if __name__ == "__main__":
    sys.exit(main())
