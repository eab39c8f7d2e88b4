"""Accounts in the browser (issue 17), in headless Chromium against the real platform.

The admin adds bob on ``/hub/accounts`` (reached from the admin page) and gets
a one-time link; bob sets a password with it and signs in; the link does not
work twice; bob changes his password at ``/hub/change-password``; the old
password then fails and the new one works.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import BrowserContext, Page, expect

from tests.e2e.conftest import LoopbackGuard
from tests.support.members import Member, platform_with_members
from tests.support.platform import Platform

pytestmark = [pytest.mark.browser, pytest.mark.integration]

_RUN = secrets.token_hex(3)
ADMIN = f"root{_RUN}"
BOB = f"bob{_RUN}"
ADMIN_PASSWORD = "admin password for the browser test"
FIRST = "bob's first password"
SECOND = "bob's second password"


@pytest.fixture(scope="module")
def platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Platform]:
    with platform_with_members(
        tmp_path_factory.mktemp("accounts-browser"),
        "culling: {enabled: false}\nlocal: {isolation: none}\n",
        [Member(ADMIN, ADMIN_PASSWORD, admin=True)],
    ) as started:
        yield started


def sign_in(page: Page, base_url: str, name: str, password: str) -> None:
    page.goto(f"{base_url}/hub/login?next=%2Fhub%2Fhome")
    page.locator("#username_input").fill(name)
    page.locator("#password_input").fill(password)
    page.locator("#login_submit").click()


def shot(page: Page, artifacts: Path, name: str) -> None:
    try:
        page.screenshot(path=str(artifacts / name), full_page=True)
    except Exception as exc:  # a failed screenshot must not mask the result
        print(f"screenshot {name} failed: {exc}")


def test_admin_adds_bob_who_sets_and_changes_his_password(
    platform: Platform, browser: tuple[BrowserContext, LoopbackGuard], artifacts_dir: Path
) -> None:
    context, guard = browser
    page = context.new_page()
    try:
        # the admin: admin page -> password accounts -> add bob -> one-time link
        sign_in(page, platform.url, ADMIN, ADMIN_PASSWORD)
        page.wait_for_url(re.compile(r"/hub/home"))
        page.goto(f"{platform.url}/hub/admin")
        page.locator("#labfleet-accounts-link a").click()
        page.wait_for_url(re.compile(r"/hub/accounts"))
        page.locator("#new-member-name").fill(BOB)
        page.locator("#add-member-submit").click()
        link_box = page.locator("#set-password-link")
        expect(link_box).to_be_visible()
        link = link_box.input_value()
        assert "/hub/set-password/" in link
        shot(page, artifacts_dir, "accounts-admin-added-bob.png")
        context.clear_cookies()

        # bob: the link, a password, sign in
        page.goto(link)
        expect(page.locator("#invite-name")).to_have_text(BOB)
        page.locator("#password").fill(FIRST)
        page.locator("#confirm").fill(FIRST)
        page.locator("#set-password-submit").click()
        expect(page.locator("#password-set")).to_be_visible()
        page.goto(link)  # single use
        expect(page.locator("#link-invalid")).to_be_visible()
        sign_in(page, platform.url, BOB, FIRST)
        page.wait_for_url(re.compile(r"/hub/home"))

        # bob changes his password (the home page links to the form)
        page.locator("#labfleet-account-links a").first.click()
        page.wait_for_url(re.compile(r"/hub/change-password"))
        page.locator("#current").fill(FIRST)
        page.locator("#password").fill(SECOND)
        page.locator("#confirm").fill(SECOND)
        page.locator("#change-password-submit").click()
        expect(page.locator("#password-changed")).to_be_visible()
        page.goto(f"{platform.url}/hub/home")  # this browser is still signed in
        page.wait_for_url(re.compile(r"/hub/home"))
        shot(page, artifacts_dir, "accounts-bob-changed-password.png")
        context.clear_cookies()

        # the old password fails, the new one works
        sign_in(page, platform.url, BOB, FIRST)
        expect(page.locator(".login_error")).to_be_visible()
        assert "/hub/login" in page.url
        sign_in(page, platform.url, BOB, SECOND)
        page.wait_for_url(re.compile(r"/hub/home"))
    except Exception:
        shot(page, artifacts_dir, "accounts-browser-FAILED.png")
        raise
    assert not guard.blocked, guard.blocked
