"""SSL contexts for the three sides CHP knows: public, API, and client (to targets)."""

from __future__ import annotations

import ssl

from labfleet.proxy.options import TLSFiles


def server_context(files: TLSFiles) -> ssl.SSLContext | None:
    """Listening side; with ``request_cert`` clients must present a cert from ``ca``."""
    if not files.enabled:
        return None
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH, cafile=files.ca)
    assert files.cert is not None
    ctx.load_cert_chain(files.cert, files.key)
    if files.request_cert:
        ctx.verify_mode = ssl.CERT_REQUIRED if files.reject_unauthorized else ssl.CERT_OPTIONAL
    ctx.set_alpn_protocols(["http/1.1"])
    return ctx


def client_context(files: TLSFiles, *, insecure: bool) -> ssl.SSLContext | None:
    """Connecting to https targets (JupyterHub's internal SSL uses a private CA)."""
    if not (files.enabled or files.ca or insecure):
        return None
    ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=files.ca)
    if files.enabled:
        assert files.cert is not None
        ctx.load_cert_chain(files.cert, files.key)
    if insecure:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    return ctx
