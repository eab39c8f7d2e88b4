"""Keep credentials out of the hub's logs, whoever writes the line.

JupyterHub dumps request headers on a 500 (scrubbing only ``Authorization``
and ``Cookie``, not ``x-goog-iap-jwt-assertion``), and tornado logs the full
URI of a refused OAuth callback (``?code=...&state=...``). Every labfleet
authenticator installs :class:`RedactSecrets` on the hub's loggers and their
handlers, so such lines reach the log with ``[secret]`` in place of values.
"""

from __future__ import annotations

import logging
import re

_JWT_LIKE = re.compile(r"eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]*\.[A-Za-z0-9_-]*")
#: Values shorter than 12 characters are left alone (``?state=active`` is not a secret).
_SECRET_PARAMS = re.compile(
    r"(?i)\b(code|state|token|access_token|id_token|refresh_token|client_secret|_xsrf)"
    r"=[^&\s\"')]{12,}"
)
#: The loggers JupyterHub and tornado write requests and errors to.
HUB_LOGGERS = ("JupyterHub", "tornado.access", "tornado.application", "tornado.general")


def redact(message: str) -> str:
    message = _JWT_LIKE.sub("[secret]", message)
    return _SECRET_PARAMS.sub(lambda match: f"{match.group(1)}=[secret]", message)


class RedactSecrets(logging.Filter):
    """Rewrite a record whose text holds a JWT or a secret query parameter."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a malformed record is not ours to fix
            return True
        cleaned = redact(message)
        if cleaned != message:
            record.msg = cleaned
            record.args = None
        return True


def install_redaction(names: tuple[str, ...] = HUB_LOGGERS) -> None:
    """Filter the loggers and their handlers (handler filters also see propagated records)."""
    for name in names:
        logger = logging.getLogger(name)
        for target in [logger, *logger.handlers]:
            if not any(isinstance(f, RedactSecrets) for f in target.filters):
                target.addFilter(RedactSecrets())
