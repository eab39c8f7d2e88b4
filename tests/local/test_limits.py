"""cgroup limits: layout detection (pure), v2 file formats, and the real hierarchy as root.

The machine's own hierarchy (v1/hybrid on CI, v2 on most servers) is used for
the root tests: a process launched by the real ExecLauncher joins its group
before dropping privileges, is OOM-killed at its memory limit, and whatever
is left in the group (even after ``setsid``) dies when the group is removed.
"""

from __future__ import annotations

import os
import pickle
import signal
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from labfleet.spawn.launch import ExecLauncher, LaunchSpec
from labfleet.spawn.limits import Limits, LimitsBackend, LimitsError, probe
from labfleet.spawn.limits.detect import choose, parse_mountinfo
from labfleet.spawn.limits.v2 import CgroupV2
from tests.local.conftest import needs_root

PURE_V2 = "30 23 0:26 / /sys/fs/cgroup rw,nosuid shared:4 - cgroup2 cgroup2 rw,nsdelegate\n"
HYBRID = """\
33 25 0:28 / /sys/fs/cgroup ro,nosuid shared:9 - tmpfs tmpfs ro,mode=755
34 33 0:29 / /sys/fs/cgroup/unified rw,nosuid shared:10 - cgroup2 cgroup2 rw
37 33 0:32 / /sys/fs/cgroup/cpu,cpuacct rw,nosuid shared:14 - cgroup cgroup rw,cpu,cpuacct
38 33 0:33 / /sys/fs/cgroup/memory rw,nosuid shared:15 - cgroup cgroup rw,memory
39 33 0:34 / /sys/fs/cgroup/pids rw,nosuid shared:16 - cgroup cgroup rw,pids
40 33 0:35 / /sys/fs/cgroup/my\\040dir rw shared:17 - cgroup cgroup rw,freezer
"""


def _reader(controllers: dict[str, str]) -> Callable[[Path], str]:
    def read(path: Path) -> str:
        try:
            return controllers[str(path.parent)]
        except KeyError:
            raise FileNotFoundError(path) from None

    return read


def test_parse_mountinfo_hybrid() -> None:
    mounts = {str(m.path): m for m in parse_mountinfo(HYBRID)}
    assert mounts["/sys/fs/cgroup/unified"].version == 2
    assert "cpuacct" in mounts["/sys/fs/cgroup/cpu,cpuacct"].options
    assert "/sys/fs/cgroup/my dir" in mounts  # \040 is a space
    assert "/sys/fs/cgroup" not in mounts  # tmpfs


def test_hybrid_without_v2_controllers_chooses_v1() -> None:
    read = _reader({"/sys/fs/cgroup/unified": "hugetlb\n"})
    found = choose("auto", parse_mountinfo(HYBRID), read)
    assert found.backend is not None and found.backend.name == "cgroup v1"
    assert found.backend.controllers == {"memory", "cpu", "pids"}
    assert found.missing == frozenset()
    assert choose("v2", parse_mountinfo(HYBRID), read).backend is None


def test_pure_v2_is_preferred_and_missing_controllers_are_reported() -> None:
    read = _reader({"/sys/fs/cgroup": "cpuset cpu io memory hugetlb\n"})
    found = choose("auto", parse_mountinfo(PURE_V2), read)
    assert found.backend is not None and found.backend.name == "cgroup v2"
    assert found.missing == {"pids"}
    assert choose("v1", parse_mountinfo(PURE_V2), read).backend is None
    off = choose("none", parse_mountinfo(PURE_V2), read)
    assert off.backend is None and "local.limits: none" in off.reason


def test_nothing_mounted_says_why() -> None:
    found = choose("auto", [], _reader({}))
    assert found.backend is None and "no cgroup" in found.reason


def test_v2_writes_limits_in_its_formats(tmp_path: Path) -> None:
    """A v2 tree laid out in a plain directory: the files v2 reads get the right values."""
    (tmp_path / "cgroup.subtree_control").write_text("")
    (tmp_path / "labfleet").mkdir()
    (tmp_path / "labfleet" / "cgroup.subtree_control").write_text("")
    backend = CgroupV2(tmp_path, {"memory", "cpu", "pids"})
    (tmp_path / "labfleet" / "alice").mkdir()
    (tmp_path / "labfleet" / "alice" / "memory.swap.max").write_text("max")
    backend.create("alice", Limits(cpu=1.5, memory=200 * 2**20, pids=256))
    group = tmp_path / "labfleet" / "alice"
    assert (group / "memory.max").read_text() == str(200 * 2**20)
    assert (group / "memory.swap.max").read_text() == "0"
    assert (group / "cpu.max").read_text() == "150000 100000"
    assert (group / "pids.max").read_text() == "256"
    assert (tmp_path / "cgroup.subtree_control").read_text() == "+cpu +memory +pids"
    backend.create("alice", Limits())
    assert (group / "memory.max").read_text() == "max"
    assert (group / "cpu.max").read_text() == "max 100000"
    with pytest.raises(LimitsError):
        backend.create("../../etc", Limits())


def test_join_hook_travels_to_a_fork_server_by_plain_pickle(tmp_path: Path) -> None:
    hook = CgroupV2(tmp_path, {"memory"}).join_hook("alice")
    assert pickle.loads(pickle.dumps(hook)) == hook  # noqa: S301 - our own bytes
    (tmp_path / "labfleet" / "alice").mkdir(parents=True)
    procs = tmp_path / "labfleet" / "alice" / "cgroup.procs"
    procs.write_text("")
    hook()  # in a real hierarchy this moves the caller; here it just writes our pid
    assert procs.read_text() == str(os.getpid())


# --- the real hierarchy (root) -------------------------------------------------------


@pytest.fixture
def backend() -> LimitsBackend:
    found = probe("auto")
    if found.backend is None:
        pytest.skip(f"no cgroup backend usable here: {found.reason}")
    return found.backend


@pytest.fixture
def group(backend: LimitsBackend) -> Iterator[str]:
    name = f"lftest-{uuid.uuid4().hex[:8]}"
    yield name
    backend.remove(name)


def _written_limits(backend: LimitsBackend, group: str) -> dict[str, str]:
    """The limits as the kernel reports them, in the layout of ``backend``."""
    if backend.name == "cgroup v2":
        base = Path(backend.location()) / group
        files = {"memory": base / "memory.max", "cpu": base / "cpu.max", "pids": base / "pids.max"}
    else:
        root = Path("/sys/fs/cgroup")
        files = {
            "memory": root / "memory" / "labfleet" / group / "memory.limit_in_bytes",
            "cpu": root / "cpu" / "labfleet" / group / "cpu.cfs_quota_us",
            "pids": root / "pids" / "labfleet" / group / "pids.max",
        }
    values = {name: path.read_text().split()[0] for name, path in files.items()}
    return values


def _launch(python: Path, code: str, backend: LimitsBackend, group: str, tmp: Path) -> int:
    spec = LaunchSpec(
        argv=[str(python), "-c", code],
        env={"PATH": "/usr/bin:/bin"},
        cwd=Path("/"),
        log_path=tmp / f"{uuid.uuid4().hex}.log",
        uid=65534,
        gid=65534,
        pre_exec=(backend.join_hook(group),),
    )
    return ExecLauncher().launch(spec)


def _wait_exit(pid: int, timeout: float = 30) -> int:
    """Our child's wait status once it exits."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return status
        time.sleep(0.05)
    os.kill(pid, signal.SIGKILL)
    raise TimeoutError(f"{pid} still running")


@pytest.mark.root
@needs_root
def test_process_joins_group_before_dropping_privileges_and_is_oom_killed(
    backend: LimitsBackend, group: str, user_environment: Path, shared_tmp: Path
) -> None:
    backend.create(group, Limits(cpu=0.5, memory=64 * 2**20, pids=64))
    assert _written_limits(backend, group) == {
        "memory": str(64 * 2**20),
        "cpu": "50000",
        "pids": "64",
    }
    python = user_environment / "bin" / "python"
    sleeper = _launch(python, "import time; time.sleep(60)", backend, group, shared_tmp)
    try:
        assert sleeper in backend.pids(group)
        status = Path(f"/proc/{sleeper}/status").read_text()
        assert "\nUid:\t65534\t65534\t65534\t65534" in status, "must run as nobody, not root"
        hog = _launch(python, "x = bytearray(512 * 2**20)", backend, group, shared_tmp)
        code = _wait_exit(hog)
        assert os.WIFSIGNALED(code) and os.WTERMSIG(code) == signal.SIGKILL
        assert backend.oom_kills(group) >= 1
        assert sleeper in backend.pids(group), "the limit killed the hog, not its neighbour"
    finally:
        os.kill(sleeper, signal.SIGKILL)
        _wait_exit(sleeper)


@pytest.mark.root
@needs_root
def test_pids_cap_stops_a_fork_bomb(
    backend: LimitsBackend, group: str, user_environment: Path, shared_tmp: Path
) -> None:
    if "pids" not in backend.controllers:
        pytest.skip(f"{backend.name} here has no pids controller")
    backend.create(group, Limits(pids=8))
    code = (
        "import os, sys, time\n"
        "n = 0\n"
        "try:\n"
        "    for _ in range(50):\n"
        "        if os.fork() == 0:\n"
        "            time.sleep(30); os._exit(0)\n"
        "        n += 1\n"
        "except OSError:\n"
        "    sys.exit(3 if n < 10 else 4)\n"
        "sys.exit(5)\n"
    )
    pid = _launch(user_environment / "bin" / "python", code, backend, group, shared_tmp)
    status = _wait_exit(pid)
    assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 3
    assert backend.remove(group)


@pytest.mark.root
@needs_root
def test_remove_kills_processes_that_left_the_session(
    backend: LimitsBackend, group: str, user_environment: Path, shared_tmp: Path
) -> None:
    backend.create(group, Limits(pids=32))
    code = (
        "import os, time\n"
        "if os.fork() == 0:\n"
        "    os.setsid()\n"
        "    time.sleep(120)\n"
        "time.sleep(120)\n"
    )
    pid = _launch(user_environment / "bin" / "python", code, backend, group, shared_tmp)
    deadline = time.monotonic() + 10
    escaped: list[int] = []
    while not escaped and time.monotonic() < deadline:
        time.sleep(0.05)
        escaped = [p for p in backend.pids(group) if p != pid and os.getsid(p) != os.getsid(pid)]
    assert escaped, "the child should have left the server's session"
    assert backend.remove(group)
    _wait_exit(pid)
    assert backend.pids(group) == []
    assert (
        not Path(f"/proc/{escaped[0]}/cmdline").exists()
        or Path(f"/proc/{escaped[0]}/stat").read_text().split(") ")[1][0] == "Z"
    )
