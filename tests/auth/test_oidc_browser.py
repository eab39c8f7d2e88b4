"""Full browser sign-in through LocalOpenIDProvider with headless Chromium (Playwright).

Generic OIDC: sign in and land on the hub's home page; unverified e-mail is
refused. Google-style: a consumer account (no ``hd``) with a work address is
refused. Screenshots go to test-artifacts/.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from hubrunner import RunningHub
from oidc_provider import LocalOpenIDProvider
from playwright.sync_api import Browser, Page, sync_playwright

pytestmark = [
    pytest.mark.integration,
    pytest.mark.browser,
    pytest.mark.filterwarnings("ignore:The .grant. parameter will become mandatory"),
]

CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if not CHROMIUM.exists():
        pytest.fail("Chromium is missing at /usr/bin/chromium: scripts/test installs it")
    with sync_playwright() as playwright:
        instance = playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=["--no-sandbox", "--headless"]
        )
        yield instance
        instance.close()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context()
    page = context.new_page()
    page.set_default_timeout(30_000)
    yield page
    context.close()


def _sign_in(page: Page, hub: RunningHub, provider: LocalOpenIDProvider, account: str) -> int:
    page.goto(f"{hub.hub}/login?next=%2Fhub%2Fhome")
    page.click("a#login-main, a.btn-jupyter, a[href*='oauth_login']")
    page.wait_for_url(f"{provider.url}/authorize*")
    page.fill("#username", account)
    with page.expect_response(lambda r: "/hub/oauth_callback" in r.url) as callback:
        page.click("#sign-in")
    status: int = callback.value.status
    page.wait_for_load_state()
    return status


def _shot(page: Page, name: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / name), full_page=True)


def test_browser_oidc_sign_in(
    page: Page, oidc_hub: RunningHub, provider: LocalOpenIDProvider
) -> None:
    assert _sign_in(page, oidc_hub, provider, "alice") == 302
    page.wait_for_url(f"{oidc_hub.hub}/home*")
    _shot(page, "auth-oidc-home.png")
    assert "alice@corp.example" in page.content()


def test_browser_oidc_unverified_email(
    page: Page, oidc_hub: RunningHub, provider: LocalOpenIDProvider
) -> None:
    assert _sign_in(page, oidc_hub, provider, "eve") == 403
    _shot(page, "auth-oidc-unverified.png")
    assert "not verified" in page.content()
    assert not [c for c in page.context.cookies() if c["name"] == "jupyterhub-session-id"]


def test_browser_google_wrong_hd(
    page: Page, google_hub: RunningHub, provider: LocalOpenIDProvider
) -> None:
    assert _sign_in(page, google_hub, provider, "bob") == 403
    _shot(page, "auth-google-wrong-hd.png")
    assert "Workspace domain" in page.content()
