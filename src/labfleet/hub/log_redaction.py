"""Keep session ids and tokens out of the hub's logs.

JupyterHub logs the XSRF cookie id — which embeds the user's session id — at
INFO level ("Setting new xsrf cookie for b'<session-id>:…'"). Logs are
shipped and shared far more widely than cookies, so we redact such values
before any handler sees them.
"""

from __future__ import annotations

import logging
import re

#: message templates whose arguments carry session ids or cookie values
_REDACT_ARGS = (
    "Setting new xsrf cookie for",
    "xsrf id mismatch",
    "Invalid value",
    "Invalid base64",
)
_TOKEN_IN_TEXT = re.compile(r"((?:token|_xsrf|code|state)=)[^&\s'\"]+", re.IGNORECASE)
REDACTED = "[redacted]"


class RedactSecrets(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        msg = record.msg if isinstance(record.msg, str) else ""
        if msg.startswith(_REDACT_ARGS) and record.args:
            args = record.args if isinstance(record.args, tuple) else (record.args,)
            record.args = tuple(REDACTED for _ in args)
        elif msg and _TOKEN_IN_TEXT.search(msg):
            record.msg = _TOKEN_IN_TEXT.sub(rf"\1{REDACTED}", msg)
        return True


def install() -> None:
    """Attach the filter to the loggers JupyterHub and tornado write through."""
    redact = RedactSecrets()
    for name in ("tornado.application", "tornado.access", "tornado.general", "JupyterHub"):
        logger = logging.getLogger(name)
        if not any(isinstance(f, RedactSecrets) for f in logger.filters):
            logger.addFilter(redact)
