"""Failures explain themselves in the browser (issue 17).

* A server that exits at once: the spawn page says so with the likely cause
  and the last lines of its log (instead of waiting at 20 % for the full
  start timeout). The assertion is on content; the test's own timeout is the
  only clock.
* A server killed at its memory limit: the member's "not running" page says
  it was killed for using more than the profile's memory, and
  ``labfleet status`` shows the same.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from playwright.sync_api import BrowserContext, expect

from tests.e2e.conftest import PASSWORD, LoopbackGuard, login
from tests.support.client import KERNEL_DIED, HubUser
from tests.support.members import Member, platform_with_members
from tests.support.platform import Platform, labfleet

pytestmark = [pytest.mark.browser, pytest.mark.integration]

_RUN = secrets.token_hex(3)
BROKEN_USER = f"brook{_RUN}"
OOM_USER = f"oona{_RUN}"


def _broken_environment(root: Path) -> Path:
    """A Python environment whose jupyterhub-singleuser fails the way a half-installed one does."""
    bin_dir = root / "bin"
    bin_dir.mkdir(parents=True)
    script = bin_dir / "jupyterhub-singleuser"
    script.write_text(
        "#!/bin/sh\n"
        "echo 'Traceback (most recent call last):' >&2\n"
        "echo '  File \"jupyterhub-singleuser\", line 5, in <module>' >&2\n"
        "echo \"ModuleNotFoundError: No module named 'jupyter_server'\" >&2\n"
        "exit 1\n"
    )
    script.chmod(0o755)
    root.chmod(0o755)
    return root


@pytest.fixture(scope="module")
def failing_platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Platform]:
    base = tmp_path_factory.mktemp("failures")
    base.chmod(0o755)
    env = _broken_environment(base / "broken-env")
    config = (
        "culling: {enabled: false}\n"
        "servers: {start_timeout: 60}\n"
        # isolation is not what these tests are about (pytest's tmp root is 0700)
        "local: {isolation: none}\n"
        "hub: {extra_config: {Spawner: {poll_interval: 1}}}\n"
        "profiles:\n"
        "  - {slug: small, display_name: Small, memory: 400Mi, default: true}\n"
        f"  - {{slug: broken, display_name: Broken environment, environment: {env}}}\n"
    )
    members = [Member(BROKEN_USER, PASSWORD), Member(OOM_USER, PASSWORD)]
    with platform_with_members(base, config, members) as platform:
        yield platform


def _shot(page, artifacts: Path, name: str) -> None:
    try:
        page.screenshot(path=str(artifacts / name), full_page=True)
    except Exception as exc:  # a failed screenshot must not mask the result
        print(f"screenshot {name} failed: {exc}")


def test_server_that_exits_at_once_is_explained_with_its_log(
    failing_platform: Platform,
    browser: tuple[BrowserContext, LoopbackGuard],
    artifacts_dir: Path,
) -> None:
    context, guard = browser
    page = context.new_page()
    try:
        login(page, failing_platform.url, BROKEN_USER, next_url="/hub/spawn")
        page.wait_for_url(re.compile(r"/hub/spawn"))
        page.locator("input[value=broken]").check()
        page.locator("#spawn_form button[type=submit]").click()
        # the spawn form again with the reason, or the progress page's message: either way
        # the failure is reported as it happens, well before the 60 s start timeout
        body = page.locator("body")
        expect(body).to_contain_text("exited while starting", timeout=20_000)
        text = body.inner_text()
        assert "No module named 'jupyter_server'" in text, text
        assert "package the server needs is missing" in text, text
        assert "SpawnException" not in text, text
        assert "labfleet logs" in text, text  # what to do next
        _shot(page, artifacts_dir, "failure-exits-at-once.png")
    finally:
        page.close()
    assert not guard.blocked


def test_oom_kill_is_shown_to_the_member(
    failing_platform: Platform,
    browser: tuple[BrowserContext, LoopbackGuard],
    artifacts_dir: Path,
) -> None:
    member = HubUser(failing_platform.url, OOM_USER)
    try:
        member.login(PASSWORD)
        member.start_server({"profile": "small"}).raise_for_status()
        member.wait_ready()
        token = member.new_token()
        # make the server the kernel's choice of victim, then use 1 GB; the server is the
        # kernel's parent, or its grandparent when the kernel was forked from the server's
        # kernel zygote (local.kernel_preload)
        code = (
            "import os\n"
            "server = os.getppid()\n"
            "if open(f'/proc/{server}/comm').read().strip() == 'kernel-zygote':\n"
            "    server = int(open(f'/proc/{server}/stat').read().rsplit(')', 1)[1].split()[1])\n"
            "open(f'/proc/{server}/oom_score_adj', 'w').write('1000')\n"
            "blocks = []\n"
            "for _ in range(100):\n"
            "    blocks.append(bytearray(10 * 2**20))\n"
            "print('survived')\n"
        )
        try:  # in a thread: Playwright's sync API owns this thread's event loop
            with ThreadPoolExecutor(1) as pool:
                output = pool.submit(member.run_code, token, code, 60).result()
        except Exception as exc:  # the server went away mid-request: that is the point
            output = f"{KERNEL_DIED}: {exc}"
        assert "survived" not in output
        member.wait_stopped(timeout=60)
    finally:
        member.close()

    context, _guard = browser
    page = context.new_page()
    try:
        login(page, failing_platform.url, OOM_USER, next_url="/hub/home")
        page.goto(f"{failing_platform.url}/user/{OOM_USER}/lab")
        notice = page.locator("#labfleet-last-end")
        expect(notice).to_contain_text("killed: used more than 400 MiB", timeout=30_000)
        _shot(page, artifacts_dir, "failure-oom-kill.png")
        # and on the usage dashboard (an admin sees everyone's; the member their own)
        page.goto(f"{failing_platform.url}/services/dashboard/")
        expect(page.locator("#lf-ends")).to_contain_text("killed: used more than 400 MiB")
    finally:
        page.close()
    status = labfleet("status", data_dir=failing_platform.data_dir)
    assert "killed: used more than 400 MiB" in status.stdout, status.stdout
