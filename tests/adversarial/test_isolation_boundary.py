"""The hostile member on one machine: alice's kernel attacks bob's (real platform, as root).

Alice knows bob's uid (``ps`` shows it), reads ``/proc/net/tcp`` for bob's
loopback listeners and connects a ZeroMQ SUB socket to every one of them and
to bob's kernel sockets, while bob's kernel prints a secret. iopub needs no
key, so on TCP loopback she would receive bob's output live. She must receive
nothing, and must not be able to read the hub's database or secrets either.
A positive control runs the very same capture from bob's own account and
receives his output, so a silent failure of the attack code cannot pass.
"""

from __future__ import annotations

import glob
import pwd
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from labfleet.naming import user_slug
from labfleet.spawn.accounts import platform_marker, platform_tag, purge_platform
from tests.local.conftest import needs_root, shared_tmp, user_environment  # noqa: F401
from tests.local.platforms import add_and_login, new_platform, unique_names
from tests.support.client import HubUser, run_code
from tests.support.platform import Platform

pytestmark = [pytest.mark.integration, pytest.mark.root, needs_root]

SECRET = "bob-secret-6d1f"

CAPTURE = """
import glob, time, zmq
victim_uid = {uid}
ports = set()
for table in ('/proc/net/tcp', '/proc/net/tcp6'):
    try:
        rows = open(table).read().splitlines()[1:]
    except OSError:
        continue
    for row in rows:
        cols = row.split()
        if cols[3] == '0A' and int(cols[7]) == victim_uid:  # LISTEN, owned by the victim
            ports.add(int(cols[1].rsplit(':', 1)[1], 16))
targets = ['tcp://127.0.0.1:%d' % port for port in sorted(ports)]
targets += ['ipc://' + path for path in {ipc_paths!r}]
for pattern in ('/run/labfleet-*/*/kernel-*', '/var/run/labfleet-*/*/kernel-*'):
    targets += ['ipc://' + p for p in glob.glob(pattern) if not p.endswith('.json')]
context = zmq.Context()
sub = context.socket(zmq.SUB)
sub.setsockopt(zmq.SUBSCRIBE, b'')
sub.setsockopt(zmq.LINGER, 0)
for target in sorted(set(targets)):
    try:
        sub.connect(target)
    except zmq.ZMQError:
        pass
got = []
deadline = time.time() + 6
while time.time() < deadline:
    if sub.poll(200):
        got.append(b''.join(sub.recv_multipart()))
seen = b''.join(got)
print('TARGETS', len(set(targets)), 'MESSAGES', len(got), 'SECRET', {secret!r}.encode() in seen)
"""

#: bob's kernel prints his secret for 40 s (long enough for the attack and the control)
PRINTER = (
    "import time\nstart = time.time()\nwhile time.time() - start < 40:\n"
    f"    print({SECRET!r}, flush=True)\n    time.sleep(0.1)\n"
)


@dataclass
class Member:
    user: HubUser
    token: str
    platform: Platform

    @property
    def slug(self) -> str:
        return user_slug(self.user.name)

    def server_uid(self) -> int:
        pid = (self.platform.data_dir / "state" / "servers" / f"{self.slug}.pid").read_text()
        status = Path(f"/proc/{pid.split()[0]}/status").read_text()
        return int(status.split("\nUid:\t", 1)[1].split()[0])

    def run(self, code: str) -> str:
        return run_code(self.user.server_url(), self.token, code)


@pytest.fixture(scope="module")
def platform(shared_tmp: Path, user_environment: Path) -> Iterator[Platform]:  # noqa: F811
    running = new_platform(
        shared_tmp,
        (
            "culling: {enabled: false}\n"
            "local: {isolation: system-users}\n"
            "profiles:\n"
            "  - {slug: small, display_name: Small, memory: 1G, cpu: 1,\n"
            f"      environment: {user_environment}}}\n"
        ),
    )
    running.start()
    yield running
    running.stop()
    purge_platform(running.data_dir)
    tag = platform_tag(running.data_dir)
    assert not [e.pw_name for e in pwd.getpwall() if e.pw_gecos == platform_marker(tag)]


@pytest.fixture(scope="module")
def pair(platform: Platform) -> Iterator[tuple[Member, Member]]:
    users: list[HubUser] = []
    try:
        for name in unique_names("alice", "bob"):
            user = add_and_login(platform, name)
            users.append(user)
            user.start_server().raise_for_status()
        tokens = []
        for user in users:
            user.wait_ready()
            tokens.append(user.new_token())
        yield Member(users[0], tokens[0], platform), Member(users[1], tokens[1], platform)
    except Exception:
        print(platform.log())
        raise
    finally:
        for user in users:
            user.close()


def _wait_busy_kernel(member: Member, timeout: float = 60) -> None:
    headers = {"Authorization": f"token {member.token}"}
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        kernels = httpx.get(member.user.server_url("api/kernels"), headers=headers, timeout=10)
        if any(k["execution_state"] == "busy" for k in kernels.json()):
            time.sleep(1)
            return
        time.sleep(0.3)
    raise AssertionError("bob's kernel never started printing")


def _ipc_sockets(uid: int) -> list[str]:
    return [p for p in glob.glob(f"/run/labfleet-*/{uid}/kernel-*-ipc-*")]


def test_alice_cannot_subscribe_to_bob_kernel_iopub(pair: tuple[Member, Member]) -> None:
    alice, bob = pair
    bob_uid = bob.server_uid()
    assert bob_uid != alice.server_uid() and bob_uid != 0
    printer = threading.Thread(target=bob.run, args=(PRINTER,), daemon=True)
    printer.start()
    _wait_busy_kernel(bob)
    sockets = _ipc_sockets(bob_uid)  # the attacker may guess them: give them for free
    code = CAPTURE.format(uid=bob_uid, ipc_paths=sockets, secret=SECRET)
    attack = alice.run(code)
    assert attack.split()[-4:] == ["MESSAGES", "0", "SECRET", "False"], attack
    # positive control: the same capture from bob's own account does receive his output
    control = bob.run(code)
    assert control.split()[-1] == "True", control
    printer.join(60)


def test_kernel_channels_are_unix_sockets_in_a_private_dir(pair: tuple[Member, Member]) -> None:
    alice, bob = pair
    out = alice.run(
        "import glob, json, os\n"
        "path = os.environ['JUPYTER_RUNTIME_DIR']\n"
        "print(oct(os.stat(path).st_mode & 0o777), os.stat(path).st_uid == os.getuid())\n"
        "files = glob.glob(path + '/kernel-*.json')\n"
        "print(sorted({json.load(open(f))['transport'] for f in files}))\n"
    )
    assert out.split("\n")[:2] == ["0o700 True", "['ipc']"], out
    bob_dir = glob.glob(f"/run/labfleet-*/{bob.server_uid()}")
    listing = alice.run(
        f"import os\ntry:\n    print(os.listdir({bob_dir[0]!r}))\n"
        "except OSError as exc:\n    print(type(exc).__name__)\n"
    )
    assert listing.strip() == "PermissionError"


def test_alice_cannot_read_the_hub_database_or_secrets(pair: tuple[Member, Member]) -> None:
    alice, _bob = pair
    data_dir = alice.platform.data_dir
    private = [data_dir / "jupyterhub.sqlite", data_dir / "accounts.sqlite"]
    private += [data_dir / f"jupyterhub.sqlite{suffix}" for suffix in ("-wal", "-shm", "-journal")]
    private += [p for sub in ("secrets", "state", "logs") for p in (data_dir / sub).rglob("*")]
    private += [data_dir / sub for sub in ("secrets", "state", "logs")]
    assert (data_dir / "jupyterhub.sqlite").exists()
    out = alice.run(
        "import os\n"
        f"for path in {[str(p) for p in private]!r}:\n"
        "    try:\n"
        "        (os.listdir if os.path.isdir(path) else lambda p: open(p, 'rb').read(1))(path)\n"
        "        print('READ', path)\n"
        "    except FileNotFoundError:\n"
        "        pass\n"
        "    except OSError as exc:\n"
        "        print(type(exc).__name__)\n"
    )
    assert "READ" not in out, out
    assert "PermissionError" in out
