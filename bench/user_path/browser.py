"""The browser row: what a member feels, in headless Chromium driven by Playwright.

*Sign in* clicked → JupyterLab usable (its launcher shows the Notebook card)
→ a new notebook's first cell, typed and run **at once** (as a person who
does not wait for the kernel would) → its output visible. Whether that first
run happened at all is reported: JupyterLab drops an execution requested
before its kernel connection is up (the prompt stays ``[ ]``), and the bench
then runs the cell again so the output time is still measured. "window" is
notebook shown → kernel connected (status bar ``| Idle``): the time in which
a typed cell can be lost.

"cold" is a new member in a fresh browser profile; "warm" is the same member
coming back in the same profile (signed out, server stopped, HTTP cache kept:
each member's assets live under their own ``/user/<name>/`` prefix). The Chrome DevTools
protocol says how many responses came from the cache, how many were
revalidated (304) and how the largest script was sent (Cache-Control,
Content-Encoding).
"""

from __future__ import annotations

import contextlib
import re
import tempfile
import time
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
from platforms import PASSWORD, Running
from playwright.sync_api import BrowserContext, Page, expect, sync_playwright

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--headless", "--disable-gpu", "--disable-quic", "--no-first-run"]
LONG = 180_000


class Network:
    """Counts what the page fetched, through a CDP session."""

    def __init__(self, context: BrowserContext, page: Page) -> None:
        self.responses = 0
        self.from_cache = 0
        self.revalidated = 0
        self.biggest: dict[str, Any] = {}
        self._sizes: dict[str, tuple[str, dict[str, str]]] = {}
        session = context.new_cdp_session(page)
        session.send("Network.enable")
        session.on("Network.responseReceived", self._response)
        session.on("Network.requestServedFromCache", self._cached)
        session.on("Network.loadingFinished", self._finished)

    def _response(self, event: dict[str, Any]) -> None:
        response = event["response"]
        self.responses += 1
        if response.get("fromDiskCache") or response.get("fromPrefetchCache"):
            self.from_cache += 1
        if response.get("status") == 304:
            self.revalidated += 1
        if event.get("type") == "Script":
            headers = {k.lower(): v for k, v in response.get("headers", {}).items()}
            self._sizes[event["requestId"]] = (response["url"], headers)

    def _cached(self, _event: dict[str, Any]) -> None:
        self.from_cache += 1

    def _finished(self, event: dict[str, Any]) -> None:
        found = self._sizes.pop(event["requestId"], None)
        size = event.get("encodedDataLength", 0)
        if found and size > self.biggest.get("bytes", -1):
            url, headers = found
            self.biggest = {
                "url": re.sub(r"^https?://[^/]+", "", url)[:90],
                "bytes": size,
                "cache-control": headers.get("cache-control", ""),
                "content-encoding": headers.get("content-encoding", ""),
            }


def one_run(context: BrowserContext, url: str, name: str, cache: str) -> dict[str, Any]:
    page = context.new_page()
    net = Network(context, page)
    row: dict[str, Any] = {"cache": cache, "user": name}
    try:
        # ?reset: a fresh workspace, so JupyterLab opens on its launcher even for a member
        # coming back (it would otherwise restore the notebook left open last time)
        page.goto(f"{url}/hub/login?next=" + quote("/hub/user-redirect/lab?reset", safe=""))
        page.locator("#username_input").fill(name)
        page.locator("#password_input").fill(PASSWORD)
        start = time.monotonic()
        page.locator("#login_submit").click()
        card = page.locator('.jp-LauncherCard[data-category="Notebook"]').first
        panel = page.locator(".jp-NotebookPanel").first
        # a new member gets the launcher; one coming back may get last time's notebook
        expect(card.or_(panel)).to_be_visible(timeout=LONG)
        row["lab_usable_s"] = time.monotonic() - start
        if card.is_visible():
            card.click()
        editor = panel.locator(".jp-Cell .jp-InputArea-editor .cm-content").first
        expect(editor).to_be_visible(timeout=LONG)
        shown = time.monotonic()
        if cache == "warm":  # its kernel is gone with the old server: "Select Kernel"
            accept = page.locator(".jp-Dialog .jp-mod-accept")
            with contextlib.suppress(Exception):
                accept.wait_for(state="visible", timeout=5_000)
                accept.click()
        editor.click()
        page.keyboard.press("Control+A")
        page.keyboard.type("print(6*7)")
        page.keyboard.press("Control+Enter")  # at once, before the kernel is connected
        idle = page.locator(".jp-StatusBar-Widget").get_by_text(re.compile(r"\| Idle$"))
        expect(idle).to_be_visible(timeout=LONG)
        row["window_s"] = time.monotonic() - shown
        output = panel.locator(".jp-Cell .jp-OutputArea-output").first
        try:
            expect(output).to_have_text(re.compile(r"^\s*42\s*$"), timeout=5_000)
            row["first_cell_ran"] = "yes"
        except AssertionError:
            row["first_cell_ran"] = "no (dropped)"
            editor.click()
            page.keyboard.press("Control+Enter")
            expect(output).to_have_text(re.compile(r"^\s*42\s*$"), timeout=LONG)
        row["output_visible_s"] = time.monotonic() - start
    except Exception as exc:
        row["error"] = f"{type(exc).__name__}: {str(exc)[:200]}"
        row["error_url"] = page.url
        shot = Path(tempfile.gettempdir()) / f"bench-user-path-{name}-{cache}.png"
        with contextlib.suppress(Exception):
            page.screenshot(path=str(shot))
            row["screenshot"] = str(shot)
    finally:
        row.update(requests=net.responses, from_cache=net.from_cache, revalidated=net.revalidated)
        row["biggest_script"] = net.biggest
        page.close()
    return row


def stop_server(url: str, token: str, name: str) -> None:
    """Stop ``name``'s server and wait until the hub says it is gone."""
    headers = {"Authorization": f"token {token}"}
    with httpx.Client(base_url=url, headers=headers, timeout=60) as http:
        http.delete(f"/hub/api/users/{quote(name)}/server")
        for _ in range(600):
            if not http.get(f"/hub/api/users/{quote(name)}").json().get("servers"):
                return
            time.sleep(0.2)


def browser_path(url: str, running: Running, runs: int, token: str) -> list[dict[str, Any]]:
    """``runs`` times (a new member, fresh profile; the same member back, server restarted)."""
    rows = []
    tag = running.name[:2]
    with sync_playwright() as driver, tempfile.TemporaryDirectory() as profiles:
        for i in range(runs):
            context = driver.chromium.launch_persistent_context(
                str(Path(profiles) / f"profile{i}"),
                executable_path=CHROMIUM,
                headless=True,
                args=ARGS,
                viewport={"width": 1280, "height": 900},
            )
            try:
                name = f"g{tag}{i}"
                running.add_members([name])
                for cache in ("cold", "warm"):
                    context.clear_cookies()  # signed out; the HTTP cache stays
                    rows.append(one_run(context, url, name, cache))
                    stop_server(url, token, name)
            finally:
                context.close()
    return rows
