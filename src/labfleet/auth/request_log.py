"""The hub's request log with the client address labfleet believes, not the one a header claims.

JupyterHub's ``log_request`` writes ``request.remote_ip``, which Tornado (with
``xheaders=True``) takes from ``X-Real-Ip`` / ``X-Forwarded-For`` sent by anyone. A
member's kernel can dial the hub's loopback port and so write any address into the
log an admin reads after an incident. This log function first replaces
``remote_ip`` with :func:`labfleet.auth.client_address.client_address` (headers
only from a trusted hop whose socket is the hub's own user's), then hands over to
JupyterHub's own function, which also records the request metrics.
"""

from __future__ import annotations

from collections.abc import Callable, MutableMapping
from typing import Any

from jupyterhub.log import log_request

from labfleet.auth.client_address import Network, client_address


def trusted_log_function(trusted: tuple[Network, ...]) -> Callable[[Any], None]:
    def log_with_trusted_address(handler: Any) -> None:
        request = handler.request
        request.remote_ip = client_address(request, trusted, strict=True)
        log_request(handler)

    return log_with_trusted_address


def install_request_log(
    tornado_settings: MutableMapping[str, Any], trusted: tuple[Network, ...]
) -> None:
    """Use the trusted-address log unless the admin configured a ``log_function`` of their own.

    Called from ``get_handlers``, after JupyterHub merged its default (``log_request``) into
    the settings and before it builds the Tornado application from them.
    """
    if tornado_settings.get("log_function", log_request) is log_request:
        tornado_settings["log_function"] = trusted_log_function(trusted)
