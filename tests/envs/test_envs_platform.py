"""A profile with ``environment: NAME`` on a real platform, and an install while it runs.

The platform runs as root with per-member system accounts (``isolation: auto``),
so the environment must really be usable by other accounts. A member's server
starts in the environment and imports its package in a kernel; then a package
is installed while that server runs: the running kernel goes on working from
the generation it started with (it never sees half-installed files), and a
server started afterwards sees the new package.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import shutil
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from labfleet.cli.main import main
from labfleet.envs import Store
from labfleet.envs.layout import platform_root
from tests.envs.conftest import FIRST_PACKAGE, SECOND_PACKAGE, needs_root
from tests.local.conftest import shared_tmp  # noqa: F401 - fixture
from tests.local.platforms import add_and_login, new_platform, remove_accounts, unique_names
from tests.support.client import _execute
from tests.support.platform import Platform

pytestmark = [pytest.mark.integration, pytest.mark.root, needs_root]

CONFIG = (
    "culling: {enabled: false}\n"
    "local: {limits: none}\n"  # limits are not under test here: no control groups to leave
    "profiles:\n"
    "  - {slug: plain, display_name: Plain, default: true}\n"
    "  - {slug: sci, display_name: Science, environment: sci}\n"
)


def envs(platform: Platform, *args: str) -> str:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(["envs", *args, "--data-dir", str(platform.data_dir)])
    assert code == 0, out.getvalue() + err.getvalue()
    return out.getvalue()


@pytest.fixture(scope="module")
def platform(shared_tmp: Path) -> Iterator[Platform]:  # noqa: F811
    running = new_platform(shared_tmp, CONFIG)
    try:
        envs(running, "create", "sci", "--package", FIRST_PACKAGE)  # up refuses unknown names
        running.start()
        yield running
        running.stop()
    finally:
        shutil.rmtree(platform_root(running.data_dir), ignore_errors=True)


class Kernel:
    """One kernel kept open across cells (the shared helper starts one per call)."""

    def __init__(self, server_url: str, token: str) -> None:
        self.url = server_url
        self.headers = {"Authorization": f"token {token}"}
        resp = httpx.post(self.url + "api/kernels", json={"name": "python3"}, headers=self.headers)
        resp.raise_for_status()
        self.id = resp.json()["id"]

    def run(self, code: str) -> str:
        ws_url = self.url.replace("http", "ws", 1) + f"api/kernels/{self.id}/channels"
        return asyncio.run(asyncio.wait_for(_execute(ws_url, self.headers, code), 90)).strip()

    def close(self) -> None:
        httpx.delete(self.url + f"api/kernels/{self.id}", headers=self.headers)


def test_servers_run_in_the_environment_and_an_install_spares_running_kernels(
    platform: Platform,
) -> None:
    first_gen = Store(platform.data_dir).require("sci").prefix
    names = unique_names("ada", "bob")
    try:
        ada = add_and_login(platform, names[0])
        form = ada.http.get("/hub/spawn").text
        assert "Science" in form and f"environment sci: {FIRST_PACKAGE} " in form
        ada.start_server({"profile": "sci"}).raise_for_status()
        ada.wait_ready(180)  # a new environment's fork-server warms first
        kernel = Kernel(ada.server_url(), ada.new_token())
        try:
            probe = "import sys, tabulate, os; print(sys.prefix, os.getuid() != 0)"
            assert kernel.run(probe) == f"{first_gen} True"

            installed = envs(platform, "install", "sci", SECOND_PACKAGE)
            assert "generation 2" in installed
            second_gen = Store(platform.data_dir).require("sci").prefix
            assert second_gen != first_gen and first_gen.is_dir()  # in use: kept

            # the running kernel goes on, from the files it started with
            cell = (
                "import importlib.util, sys, tabulate\n"
                "print(tabulate.tabulate([[1, 2]]).count('1'), sys.prefix,"
                " importlib.util.find_spec('termcolor') is None)"
            )
            assert kernel.run(cell) == f"1 {first_gen} True"
        finally:
            kernel.close()

        bob = add_and_login(platform, names[1])
        bob.start_server({"profile": "sci"}).raise_for_status()
        bob.wait_ready(180)
        token = bob.new_token()
        fresh = Kernel(bob.server_url(), token)
        try:
            code = "import sys, tabulate, termcolor; print(sys.prefix)"
            assert fresh.run(code) == str(second_gen)
        finally:
            fresh.close()

        # removing the environment takes the name away, not the running server's files
        assert "files stay until the servers" in envs(platform, "remove", "sci")
        assert Store(platform.data_dir).get("sci") is None
        later = Kernel(bob.server_url(), token)  # a new kernel of the running server
        try:
            assert later.run(code) == str(second_gen)
        finally:
            later.close()
        for user in (ada, bob):
            user.stop_server()
            user.wait_stopped()
    except BaseException:
        for log in (platform.data_dir / "logs" / "servers").glob("*.log"):
            print(f"== {log}\n{log.read_text()[-3000:]}")
        print(platform.log()[-6000:])
        raise
    finally:
        remove_accounts(names, platform.data_dir)
