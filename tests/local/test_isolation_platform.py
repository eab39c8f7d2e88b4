"""Two users on one machine, through the real platform (`labfleet up`, as root).

Each user's server and kernels run as their own system account inside their
own control group: A cannot read B's home, reach B's server with A's cookie
or token, or signal B's processes, and a memory-hungry cell in A's kernel is
killed by A's limit while B's kernel keeps answering.
"""

from __future__ import annotations

import os
import pwd
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from labfleet.hub.settings import cgroup_parent_for
from labfleet.naming import user_slug
from labfleet.spawn.accounts import platform_account
from labfleet.spawn.limits import probe
from tests.local.conftest import needs_root
from tests.local.platforms import add_and_login, new_platform, remove_accounts, unique_names
from tests.support.client import KERNEL_DIED, HubUser, run_code
from tests.support.platform import Platform

pytestmark = [pytest.mark.integration, pytest.mark.root, needs_root]

MEMORY_LIMIT = "300M"  # at 200M the OOM killer may pick the ~100M server over the kernel


@dataclass
class Member:
    user: HubUser
    token: str
    platform: Platform

    @property
    def slug(self) -> str:
        return user_slug(self.user.name)

    @property
    def home(self) -> Path:
        return self.platform.data_dir / "homes" / self.slug

    def server_pid(self) -> int:
        pid_file = self.platform.data_dir / "state" / "servers" / f"{self.slug}.pid"
        return int(pid_file.read_text().split()[0])

    def run(self, code: str) -> str:
        return run_code(self.user.server_url(), self.token, code)


@pytest.fixture(scope="module")
def platform(shared_tmp: Path, user_environment: Path) -> Iterator[Platform]:
    running = new_platform(
        shared_tmp,
        (
            "culling: {enabled: false}\n"
            "local: {isolation: system-users}\n"
            "profiles:\n"
            f"  - {{slug: small, display_name: Small, memory: {MEMORY_LIMIT}, cpu: 1,\n"
            f"      environment: {user_environment}}}\n"
        ),
    )
    running.start()
    yield running
    running.stop()


@pytest.fixture(scope="module")
def pair(platform: Platform) -> Iterator[tuple[Member, Member]]:
    names = unique_names("ann", "ben")
    members: list[HubUser] = []
    try:
        for name in names:
            user = add_and_login(platform, name)
            members.append(user)
            user.start_server().raise_for_status()
        tokens = []
        for user in members:
            user.wait_ready()
            tokens.append(user.new_token())
        yield (Member(members[0], tokens[0], platform), Member(members[1], tokens[1], platform))
    except Exception:
        print(platform.log())  # shown by pytest for the failing test
        raise
    finally:
        for user in members:
            user.close()
        platform.stop()
        remove_accounts(names, platform.data_dir)


def test_servers_and_kernels_run_as_their_own_accounts(pair: tuple[Member, Member]) -> None:
    for member in pair:
        account = pwd.getpwnam(platform_account(member.platform.data_dir, member.user.name))
        status = Path(f"/proc/{member.server_pid()}/status").read_text()
        assert f"\nUid:\t{account.pw_uid}\t{account.pw_uid}" in status
        assert member.run("import os; print(os.getuid(), os.getgid(), os.getgroups())").split() == [
            str(account.pw_uid),
            str(account.pw_gid),
            "[]",
        ]
        info = member.home.stat()
        assert (info.st_uid, oct(info.st_mode & 0o777)) == (account.pw_uid, "0o700")


def test_a_cannot_read_b_home(pair: tuple[Member, Member]) -> None:
    ann, ben = pair
    assert ben.user.contents_put(ben.token, "secret.txt", "ben's secret").status_code in (200, 201)
    assert (ben.home / "secret.txt").read_text() == "ben's secret"
    out = ann.run(
        "import os\n"
        f"for attempt in (lambda: open({str(ben.home / 'secret.txt')!r}).read(),\n"
        f"                lambda: os.listdir({str(ben.home)!r})):\n"
        "    try:\n"
        "        print('READ', attempt())\n"
        "    except OSError as exc:\n"
        "        print(type(exc).__name__)\n"
    )
    assert out.split() == ["PermissionError", "PermissionError"]


def test_a_cannot_reach_b_server_with_cookie_or_token(pair: tuple[Member, Member]) -> None:
    ann, ben = pair
    assert ben.user.contents_get(ben.token, "").status_code == 200  # the server is up
    with_cookie = ann.user.http.get(ben.user.server_url("api/contents"))
    assert with_cookie.status_code == 403
    with_token = httpx.get(
        ben.user.server_url("api/contents"),
        headers={"Authorization": f"token {ann.token}"},
        timeout=30,
    )
    assert with_token.status_code == 403


def test_shared_folders_read_only_data_and_sticky_scratch(pair: tuple[Member, Member]) -> None:
    ann, ben = pair
    out = ann.run(
        "import os\n"
        "open(os.path.expanduser('~/scratch/from-ann.txt'), 'w').write('hello ben')\n"
        "try:\n"
        "    open(os.path.expanduser('~/data/mine.txt'), 'w').write('x')\n"
        "    print('WROTE DATA')\n"
        "except OSError as exc:\n"
        "    print(type(exc).__name__)\n"
    )
    assert out.strip() == "PermissionError"
    out = ben.run(
        "import os\n"
        "path = os.path.expanduser('~/scratch/from-ann.txt')\n"
        "print(open(path).read())\n"
        "try:\n"
        "    os.remove(path)\n"
        "    print('REMOVED')\n"
        "except OSError as exc:\n"
        "    print(type(exc).__name__)\n"
    )
    assert out.split("\n")[:2] == ["hello ben", "PermissionError"]


def test_a_cannot_signal_b_processes(pair: tuple[Member, Member]) -> None:
    ann, ben = pair
    out = ann.run(
        "import os\n"
        "try:\n"
        f"    os.kill({ben.server_pid()}, 0)\n"
        "    print('SIGNALLED')\n"
        "except OSError as exc:\n"
        "    print(type(exc).__name__)\n"
    )
    assert out.strip() == "PermissionError"


def test_memory_hungry_cell_is_stopped_by_its_own_limit(pair: tuple[Member, Member]) -> None:
    ann, ben = pair
    backend = probe("auto", cgroup_parent_for(ann.platform.data_dir)).backend
    assert backend is not None
    before = backend.oom_kills(ann.slug)
    assert ann.server_pid() in backend.pids(ann.slug)
    assert ann.run("x = bytearray(2 * 1024**3)\nprint('allocated')") == KERNEL_DIED
    assert backend.oom_kills(ann.slug) > before
    assert ben.run("print(6 * 7)").strip() == "42", "B's kernel must be untouched"
    os.kill(ann.server_pid(), 0)  # A's server survives: only the hungry kernel died
    assert ann.run("print('again')").strip() == "again"


def test_stopping_a_server_removes_its_control_group(pair: tuple[Member, Member]) -> None:
    ann, _ben = pair
    parent = cgroup_parent_for(ann.platform.data_dir)
    backend = probe("auto", parent).backend
    assert backend is not None
    pid = ann.server_pid()
    ann.user.stop_server()
    ann.user.wait_stopped()
    assert backend.pids(ann.slug) == []
    groups = [Path(m) / parent / ann.slug for m in ("/sys/fs/cgroup/memory", "/sys/fs/cgroup")]
    assert not any(g.exists() for g in groups)
    deadline = time.monotonic() + 15
    while Path(f"/proc/{pid}").exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not Path(f"/proc/{pid}").exists(), "stopped and reaped by the hub: no zombie left"
    assert ann.home.exists(), "files stay after the server stops"


def test_reserved_name_is_refused_before_any_account_exists(platform: Platform) -> None:
    """`daemon` may log in to the hub, but never gets a system account or a server."""
    user = add_and_login(platform, "daemon")
    try:
        refused = user.start_server()
        assert refused.status_code == 403
        assert "reserved for the operating system" in refused.json()["message"]
        with pytest.raises(KeyError):
            pwd.getpwnam(platform_account(platform.data_dir, "daemon"))
        assert not (platform.data_dir / "homes" / "daemon").exists()
    finally:
        user.close()
