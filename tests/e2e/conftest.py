"""Headless Chromium (Debian package) driven by Playwright, against the real platform.

The browser is the distribution's ``/usr/bin/chromium`` — never a
Playwright-downloaded one. Every browser gets a fresh profile and may only
talk to loopback: the host resolver maps every other name to "not found" and
a route handler aborts (and records) any request that leaves 127.0.0.1.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote, urlsplit

import pytest
from playwright.sync_api import BrowserContext, Page, Playwright, Route, sync_playwright

from tests.support.members import Member, platform_with_members
from tests.support.platform import REPO, Platform

CHROMIUM = Path(os.environ.get("LABFLEET_CHROMIUM", "/usr/bin/chromium"))
ARTIFACTS = REPO / "test-artifacts"
PASSWORD = "correct horse battery staple"
# per-run names: users' control groups are named after them machine-wide, so a fixed
# name could collide with another platform (or test run) on the same machine
_RUN = secrets.token_hex(3)
USERS = {"runner": f"alice{_RUN}", "redirects": f"mallory{_RUN}"}

CHROMIUM_ARGS = [
    "--no-sandbox",
    "--headless",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    # belt and braces: no name but loopback ever resolves
    "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1, EXCLUDE localhost",
]


@dataclass
class LoopbackGuard:
    """Aborts every request that is not for 127.0.0.1/localhost and remembers it."""

    blocked: list[str] = field(default_factory=list)
    #: resource types let through to loopback (None: all)
    allowed_types: frozenset[str] | None = None

    def handle(self, route: Route) -> None:
        request = route.request
        host = urlsplit(request.url).hostname or ""
        if request.url.startswith(("data:", "blob:")):
            route.continue_()
            return
        if host not in ("127.0.0.1", "localhost"):
            self.blocked.append(request.url)
            route.abort("blockedbyclient")
            return
        if self.allowed_types is not None and request.resource_type not in self.allowed_types:
            route.abort("blockedbyclient")
            return
        route.continue_()


@pytest.fixture(scope="module")
def playwright_driver() -> Iterator[Playwright]:
    assert CHROMIUM.exists(), f"{CHROMIUM} is missing: apt-get install -y chromium chromium-driver"
    with sync_playwright() as driver:
        yield driver


@pytest.fixture(scope="session")
def artifacts_dir() -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    return ARTIFACTS


@pytest.fixture
def browser(
    playwright_driver: Playwright, tmp_path: Path
) -> Iterator[tuple[BrowserContext, LoopbackGuard]]:
    """A fresh Chromium profile (persistent context in a new user data dir)."""
    context = playwright_driver.chromium.launch_persistent_context(
        str(tmp_path / "chromium-profile"),
        executable_path=str(CHROMIUM),
        headless=True,
        args=CHROMIUM_ARGS,
        viewport={"width": 1280, "height": 900},
    )
    guard = LoopbackGuard()
    context.route("**/*", guard.handle)
    context.set_default_timeout(60_000)
    context.set_default_navigation_timeout(90_000)
    try:
        yield context, guard
    finally:
        context.close()


@pytest.fixture(scope="module")
def platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Platform]:
    """One real platform (`labfleet up`) for the module; users added with the CLI."""
    members = [Member(name, PASSWORD) for name in USERS.values()]
    with platform_with_members(
        tmp_path_factory.mktemp("e2e"), "culling: {enabled: false}\n", members
    ) as started:
        yield started


def login(page: Page, base_url: str, name: str, next_url: str | None = None) -> None:
    """Fill and submit JupyterHub's login form like a person would."""
    query = "" if next_url is None else "?next=" + quote(next_url, safe="")
    page.goto(f"{base_url}/hub/login{query}")
    page.locator("#username_input").fill(name)
    page.locator("#password_input").fill(PASSWORD)
    page.locator("#login_submit").click()
