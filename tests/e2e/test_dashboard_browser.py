"""The usage dashboard in headless Chromium (issue 17).

A member starts a server; the dashboard at /services/dashboard/ (linked from
the hub's nav bar, behind the hub login) then plots that very activity: the
member appears among active users, in servers by profile and in memory/CPU
per server; the spawn-latency histogram has the spawn. An admin sees everyone.
Screenshots go to the test artifacts.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import BrowserContext, Page, expect

from tests.e2e.conftest import PASSWORD, LoopbackGuard, login
from tests.support.client import HubUser
from tests.support.members import Member, platform_with_members
from tests.support.platform import Platform

pytestmark = [pytest.mark.browser, pytest.mark.integration]

MEMBER = f"dash{secrets.token_hex(3)}"
OTHER = f"dot{secrets.token_hex(3)}"
ADMIN = f"boss{secrets.token_hex(3)}"


@pytest.fixture(scope="module")
def dashboard_platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Platform]:
    config = (
        "culling: {enabled: false}\n"
        "dashboard: {sample_every: 1}\n"
        # isolation is not what these tests are about (pytest's tmp root is 0700)
        "local: {isolation: none}\n"
        "branding: {name: Team Lab, announcement: Maintenance on Friday at 18:00}\n"
        "profiles:\n"
        "  - {slug: small, display_name: Small, memory: 1Gi, default: true}\n"
        "  - {slug: big, display_name: Big, memory: 2Gi}\n"
    )
    members = [Member(MEMBER, PASSWORD), Member(OTHER, PASSWORD), Member(ADMIN, PASSWORD, True)]
    with platform_with_members(tmp_path_factory.mktemp("dashboard"), config, members) as platform:
        yield platform


def _start(platform: Platform, name: str, profile: str) -> None:
    user = HubUser(platform.url, name)
    try:
        user.login(PASSWORD)
        started = user.start_server({"profile": profile})
        assert started.status_code < 400, started.text
        user.wait_ready()
    finally:
        user.close()


def _texts(locator) -> list[str]:  # SVG <title>: textContent (it is never rendered)
    return [str(t) for t in locator.evaluate_all("els => els.map(e => e.textContent)")]


def _wait_for_row(page: Page, url: str, text: str) -> None:
    for _ in range(30):
        page.goto(url)
        if text in page.locator("#lf-servers").inner_text():
            return
        page.wait_for_timeout(1000)
    raise AssertionError(f"{text} never appeared on the dashboard")


def test_not_logged_in_is_sent_to_the_hub_login(dashboard_platform: Platform) -> None:
    url = f"{dashboard_platform.url}/services/dashboard/"
    first = httpx.get(url, follow_redirects=False, timeout=30)
    assert first.status_code in (302, 303), first.status_code
    final = httpx.get(url, follow_redirects=True, timeout=30)
    assert "/hub/login" in str(final.url)


def test_dashboard_plots_the_members_own_activity(
    dashboard_platform: Platform,
    browser: tuple[BrowserContext, LoopbackGuard],
    artifacts_dir: Path,
) -> None:
    with ThreadPoolExecutor(2) as pool:  # Playwright's sync API owns this thread's loop
        list(
            pool.map(lambda a: _start(dashboard_platform, *a), [(MEMBER, "big"), (OTHER, "small")])
        )
    context, guard = browser
    page = context.new_page()
    login(page, dashboard_platform.url, MEMBER, next_url="/hub/home")
    page.wait_for_url(re.compile(r"/hub/home"))
    expect(page.locator("body")).to_contain_text("Maintenance on Friday at 18:00")
    assert page.title() == "Team Lab"
    link = page.locator('a[href$="/services/dashboard/"]')
    assert link.count() >= 1, "the nav bar links the dashboard"

    url = f"{dashboard_platform.url}/services/dashboard/"
    _wait_for_row(page, url, MEMBER)
    plots = page.locator("svg.lf-plot")
    assert plots.count() == 8  # six usage plots and two of GPU use
    servers = page.locator("#lf-servers").inner_text()
    assert MEMBER in servers and "big" in servers
    assert OTHER not in page.content(), "a member sees only their own servers"
    assert page.locator("svg[aria-label='Active users over time'] polyline").count() == 1
    assert page.locator("svg[aria-label='GPUs per server']").count() == 1
    profiles = page.locator("svg[aria-label='Servers by profile'] rect.lf-bar title")
    assert "big: 1" in _texts(profiles)
    memory = page.locator("svg[aria-label='Memory per server'] rect.lf-bar title")
    assert any(t.startswith(MEMBER) for t in _texts(memory))
    latency = page.locator("svg[aria-label='Spawn latency'] rect.lf-bar")
    assert latency.count() >= 1, "the spawn-latency histogram has our spawns"
    page.screenshot(path=str(artifacts_dir / "dashboard-member.png"), full_page=True)
    assert not guard.blocked, guard.blocked


def test_admin_sees_everyone(
    dashboard_platform: Platform,
    browser: tuple[BrowserContext, LoopbackGuard],
    artifacts_dir: Path,
) -> None:
    context, guard = browser
    page = context.new_page()
    login(page, dashboard_platform.url, ADMIN, next_url="/hub/home")
    page.wait_for_url(re.compile(r"/hub/home"))
    url = f"{dashboard_platform.url}/services/dashboard/"
    _wait_for_row(page, url, OTHER)
    servers = page.locator("#lf-servers").inner_text()
    assert MEMBER in servers and OTHER in servers
    assert "everyone" in page.locator("body").inner_text()
    page.set_viewport_size({"width": 1100, "height": 900})
    page.screenshot(path=str(artifacts_dir / "dashboard-admin.png"), full_page=True)
    assert not guard.blocked, guard.blocked
