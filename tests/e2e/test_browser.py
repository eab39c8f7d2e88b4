"""A person's path through the platform in headless Chromium (issue 2).

Log in through the hub's form, get a server spawned, JupyterLab loads at
``/user/<name>/lab``, open a notebook, run ``print(6*7)`` and read ``42`` in
the output. Then BAD_INPUTS #1-2: every hostile ``next=`` on ``/hub/login``
keeps the browser on the hub's origin.
"""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import quote, urlsplit

import pytest
from playwright.sync_api import BrowserContext, Locator, Page, expect

from tests.e2e.conftest import USERS, LoopbackGuard, login
from tests.support.platform import Platform

pytestmark = [pytest.mark.browser, pytest.mark.integration]

SPAWN_TIMEOUT_MS = 180_000
KERNEL_TIMEOUT_MS = 120_000


def _screenshot(page: Page, artifacts: Path, name: str) -> None:
    try:
        page.screenshot(path=str(artifacts / name), full_page=True)
    except Exception as exc:  # a failed screenshot must not mask the test result
        print(f"screenshot {name} failed: {exc}")


def _start_from_spawn_page(page: Page, user: str) -> None:
    """Follow the hub to the user's JupyterLab, pressing Start if a profile form is shown."""
    lab = re.compile(rf"/user/{re.escape(user)}/lab")
    page.wait_for_url(re.compile(rf"/hub/spawn|/user/{re.escape(user)}/"))
    form = page.locator("#spawn_form")
    on_spawn_page = "/hub/spawn/" in page.url or page.url.rstrip("/").endswith("/hub/spawn")
    if on_spawn_page and form.count():
        form.locator("button[type=submit]").click()
    page.wait_for_url(lab, timeout=SPAWN_TIMEOUT_MS)


def _run_cell_until_output(page: Page, panel: Locator, editor: Locator, text: str) -> None:
    """Ctrl+Enter in the cell; run again only if JupyterLab dropped the request.

    A run issued while the kernel connection is being (re)established is
    silently discarded (the prompt stays ``[ ]``); a real failure still fails.
    """
    output = panel.locator(".jp-Cell .jp-OutputArea-output").first
    prompt = panel.locator(".jp-Cell .jp-InputPrompt").first
    expected = re.compile(rf"^\s*{re.escape(text)}\s*$")
    for _ in range(3):
        editor.click()
        page.keyboard.press("Control+Enter")
        try:
            expect(prompt).not_to_have_text(re.compile(r"\[\s*\]"), timeout=15_000)
            break
        except AssertionError:
            continue  # never started: run it again
    expect(output).to_have_text(expected, timeout=KERNEL_TIMEOUT_MS)


def test_login_spawn_lab_run_cell(
    platform: Platform, browser: tuple[BrowserContext, LoopbackGuard], artifacts_dir: Path
) -> None:
    context, guard = browser
    page = context.new_page()
    console: list[str] = []
    page.on("console", lambda msg: console.append(f"{msg.type}: {msg.text}"))
    page.on("websocket", lambda ws: console.append(f"websocket: {ws.url}"))
    try:
        login(page, platform.url, USERS["runner"])
        _start_from_spawn_page(page, USERS["runner"])
        assert urlsplit(page.url).netloc == urlsplit(platform.url).netloc

        # JupyterLab is up: its launcher offers a Python notebook
        notebook_card = page.locator('.jp-LauncherCard[data-category="Notebook"]').first
        expect(notebook_card).to_be_visible(timeout=SPAWN_TIMEOUT_MS)
        notebook_card.click()

        panel = page.locator(".jp-NotebookPanel").first
        expect(panel).to_be_visible()
        # the status bar says Idle only once the kernel's websocket is connected (the
        # toolbar's execution indicator already says idle before there is a kernel)
        kernel_idle = page.locator(".jp-StatusBar-Widget").get_by_text(re.compile(r"\| Idle$"))
        expect(kernel_idle).to_be_visible(timeout=KERNEL_TIMEOUT_MS)

        editor = panel.locator(".jp-Cell .jp-InputArea-editor .cm-content").first
        editor.click()
        page.keyboard.type("print(6*7)")
        expect(editor).to_have_text("print(6*7)")
        _run_cell_until_output(page, panel, editor, "42")
        _screenshot(page, artifacts_dir, "browser-lab-run-cell.png")
    except Exception:
        _screenshot(page, artifacts_dir, "browser-lab-run-cell-FAILED.png")
        print("browser console:", *console[-60:], sep="\n  ")
        raise
    finally:
        page.close()
    assert guard.blocked == [], f"the page tried to leave loopback: {guard.blocked}"


#: BAD_INPUTS #1-2: each must be refused and replaced by the default URL
HOSTILE_NEXT = [
    "https://evil.example/",
    "//evil.example",
    "///evil.example/x",
    "\\\\evil.example/x",
    "/\\evil.example",
    "https:evil.example",
    "javascript:alert(1)",
    "relative/path",
]


def _assert_on_hub(page: Page, platform: Platform, guard: LoopbackGuard, bad: str) -> None:
    landed = urlsplit(page.url)
    assert landed.scheme == "http" and landed.netloc == urlsplit(platform.url).netloc, (
        f"next={bad!r} sent the browser to {page.url}"
    )
    # the host is what matters: JupyterHub answers `/\evil.example` with the same-origin
    # path `/%5Cevil.example` (a 404 on the hub), the others with the default URL
    assert guard.blocked == [], f"next={bad!r} made the browser request {guard.blocked}"


@pytest.mark.parametrize("bad", HOSTILE_NEXT)
def test_login_next_stays_on_hub_origin(
    platform: Platform,
    browser: tuple[BrowserContext, LoopbackGuard],
    bad: str,
    artifacts_dir: Path,
) -> None:
    """Logging in with, and then visiting as a logged-in user, a hostile ``next=``."""
    context, guard = browser
    # only documents: we check where the browser is sent, not what the page then loads
    guard.allowed_types = frozenset({"document"})
    dialogs: list[str] = []
    page = context.new_page()
    page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
    try:
        # mallory has no server: the default after login is the hub's own pages
        login(page, platform.url, USERS["redirects"], next_url=bad)
        page.wait_for_load_state("load")
        _assert_on_hub(page, platform, guard, bad)
        assert "/hub/login" not in urlsplit(page.url).path, "login with a hostile next= failed"

        # already logged in (BAD_INPUTS #1): the same next= is refused again
        page.goto(f"{platform.url}/hub/login?next={quote(bad, safe='')}")
        page.wait_for_load_state("load")
        _assert_on_hub(page, platform, guard, bad)
        assert dialogs == [], f"next={bad!r} ran script: {dialogs}"
    except Exception:
        _screenshot(page, artifacts_dir, f"browser-next-FAILED-{HOSTILE_NEXT.index(bad)}.png")
        raise
    finally:
        page.close()
