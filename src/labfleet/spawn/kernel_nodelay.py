"""Kernel messages leave a member's server at once: TCP_NODELAY on kernel websockets (issue 16).

Running a cell sends the browser several small websocket frames in a row
(status busy, the input, the output, status idle, the reply). Tornado leaves
Nagle's algorithm on unless a handler asks otherwise, and jupyter_server's
kernel websocket does not ask, so each frame behind an unacknowledged one
waited for the client's delayed ACK — about 40 ms on Linux. A ``print`` took
~45 ms from request to output where the kernel itself answers in ~4 ms,
measured both through the proxy and straight at the server.

This extension swaps the kernel websocket connection class for one that turns
TCP_NODELAY on when the websocket opens: each frame is a whole message
already, so nothing is gained by holding it back. Only jupyter_server's stock
ZMQ connection class is replaced; a deployment that configured another one (a
kernel gateway) keeps it.
"""

from __future__ import annotations

from typing import Any

from jupyter_server.services.kernels.connection.channels import ZMQChannelsWebsocketConnection

from labfleet.spawn.server_tuning import KERNEL_NODELAY as EXTENSION

SETTING = "kernel_websocket_connection_class"


class NoDelayConnection(ZMQChannelsWebsocketConnection):
    """The stock kernel websocket connection, with TCP_NODELAY on its socket."""

    def connect(self) -> Any:  # the stock class returns a Future where its base says coroutine
        handler = self.websocket_handler
        if handler.ws_connection is not None:  # Tornado's set_nodelay needs an open websocket
            handler.set_nodelay(True)
        return super().connect()


def _jupyter_server_extension_points() -> list[dict[str, str]]:
    return [{"module": EXTENSION}]


def _load_jupyter_server_extension(serverapp: Any) -> None:
    settings = serverapp.web_app.settings
    configured = settings.get(SETTING)
    if configured is None or configured is ZMQChannelsWebsocketConnection:
        settings[SETTING] = NoDelayConnection
    else:
        serverapp.log.info("kernel websockets keep %s (Nagle's algorithm stays on)", configured)
