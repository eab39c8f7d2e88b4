"""SSL contexts for the three sides CHP knows: public, API, and client (to targets)."""

from __future__ import annotations

import asyncio
import os
import ssl

from labfleet.proxy.options import TLSFiles
from labfleet.proxy.runtime import log


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


def _stamp(files: TLSFiles) -> tuple[tuple[int, int, int], ...]:
    """What tells us a file changed: inode, size and mtime of cert and key."""
    out = []
    for path in (files.cert, files.key):
        st = os.stat(path or "")
        out.append((st.st_ino, st.st_size, st.st_mtime_ns))
    return tuple(out)


async def watch_cert_files(ctx: ssl.SSLContext, files: TLSFiles, interval: float) -> None:
    """Load a changed certificate chain into the live context.

    New handshakes use the new chain; connections already open keep theirs,
    so nothing is dropped. A half-written pair (key and cert not matching
    yet) is skipped and tried again at the next tick, keeping the old one.
    """
    try:
        seen = _stamp(files)
    except OSError:
        seen = ()
    while True:
        await asyncio.sleep(interval)
        try:
            now = _stamp(files)
        except OSError as exc:
            log.warning("TLS files unreadable, keeping the loaded certificate: %s", exc)
            continue
        if now == seen:
            continue
        try:
            ctx.load_cert_chain(files.cert or "", files.key)
        except (OSError, ssl.SSLError) as exc:
            log.warning("new TLS files not loaded yet (keeping the old ones): %s", exc)
            continue
        seen = now
        log.info("loaded the changed certificate %s", files.cert)
