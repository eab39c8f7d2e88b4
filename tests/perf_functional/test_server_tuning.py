"""The servers' tuning arguments reach jupyter_server as the Tornado settings they mean."""

from __future__ import annotations

import gzip

import pytest
from jupyter_server.serverapp import ServerApp
from tornado.testing import AsyncHTTPTestCase
from tornado.web import Application, RequestHandler

from labfleet.spawn.server_tuning import TORNADO_SETTINGS, server_args


@pytest.fixture
def app() -> ServerApp:
    ServerApp.clear_instance()
    made = ServerApp()
    made.parse_command_line(server_args())
    return made


def test_the_arguments_set_compression_on_a_real_server_app(app: ServerApp) -> None:
    assert app.tornado_settings == TORNADO_SETTINGS
    assert app.tornado_settings["compress_response"]  # a true value as Tornado reads it


class _Script(RequestHandler):
    def get(self) -> None:
        self.set_header("Content-Type", "application/javascript")
        self.write("console.log('jupyterlab');\n" * 2000)


class CompressedResponses(AsyncHTTPTestCase):
    """Tornado with exactly the settings the servers get: scripts go out gzipped."""

    def get_app(self) -> Application:
        return Application([("/static/main.js", _Script)], **TORNADO_SETTINGS)  # type: ignore[arg-type]

    def test_scripts_are_gzipped_for_clients_that_accept_it(self) -> None:
        resp = self.fetch(
            "/static/main.js", headers={"Accept-Encoding": "gzip"}, decompress_response=False
        )
        assert resp.headers.get("Content-Encoding") == "gzip"
        body = gzip.decompress(resp.body)
        assert body.startswith(b"console.log") and len(resp.body) < len(body) / 4

    def test_clients_without_gzip_get_plain_bytes(self) -> None:
        resp = self.fetch("/static/main.js", decompress_response=False)
        assert "Content-Encoding" not in resp.headers
