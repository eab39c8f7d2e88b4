"""A Python environment for users' servers that every system account can run.

When labfleet itself lives in a private virtualenv (pyenv under a 0700
``/root`` is the common case), per-user accounts cannot execute its
``jupyterhub-singleuser``. Rather than run everyone as root, ``labfleet up``
provisions a world-readable environment once, under ``/opt/labfleet``
(like TLJH's ``/opt/tljh/user``): a venv made from a system interpreter
(``/usr/bin/python3``) with the hub's exact JupyterHub and JupyterLab versions
installed from the package index, plus a copy of labfleet's own pure-Python
package so the preloaded fork-server runs there too.

The directory name is a hash of the interpreter and the pinned versions, so
every platform and test run on the host shares one environment and an upgrade
gets a fresh one. It is built in a temporary directory and renamed into place
when complete (a ``.ready`` marker), under a lock, so an interrupted build is
never used. The first build takes about a minute (downloads ~60 MB).
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import hashlib
import importlib.metadata
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from labfleet.spawn.homes import command_unusable_reason

BASE = Path("/opt/labfleet")
SYSTEM_PYTHONS = (Path("/usr/bin/python3"), Path("/usr/local/bin/python3"))
#: distributions pinned to the hub's versions: the server stack and what labfleet imports
PINNED = ("jupyterhub", "jupyterlab", "pydantic", "pyyaml")
READY = ".ready"
Say = Callable[[str], None]


class ServerEnvError(RuntimeError):
    """No world-readable server environment could be provisioned; the message says why."""


@dataclass(frozen=True)
class ServerEnvPlan:
    """What to build and where (pure: derived from the interpreter and the pins)."""

    python: Path
    python_version: str
    pins: tuple[str, ...]
    path: Path

    @property
    def singleuser(self) -> Path:
        return self.path / "bin" / "jupyterhub-singleuser"

    @property
    def site_packages(self) -> Path:
        return self.path / "lib" / f"python{self.python_version}" / "site-packages"


def hub_pins() -> tuple[str, ...]:
    """``name==version`` of the hub's own server stack."""
    return tuple(f"{name}=={importlib.metadata.version(name)}" for name in PINNED)


def plan_for(
    python: Path, python_version: str, pins: tuple[str, ...], base: Path = BASE
) -> ServerEnvPlan:
    key = "\n".join([str(python), python_version, *pins, _labfleet_version()])
    digest = hashlib.sha256(key.encode()).hexdigest()[:10]
    return ServerEnvPlan(python, python_version, pins, base / f"server-env-{digest}")


def _labfleet_version() -> str:
    import labfleet

    return str(labfleet.__version__)


@functools.cache
def system_python() -> tuple[Path, str] | None:
    """A system interpreter every account can run, with its ``X.Y`` version."""
    for python in SYSTEM_PYTHONS:
        if not python.exists() or command_unusable_reason(python):
            continue
        probe = subprocess.run(
            [
                str(python),
                "-c",
                "import sys, venv, ensurepip; print('%d.%d' % sys.version_info[:2])",
            ],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        if probe.returncode == 0:
            return python, probe.stdout.strip()
    return None


def default_plan(base: Path = BASE) -> ServerEnvPlan | None:
    found = system_python()
    if found is None:
        return None
    return plan_for(found[0], found[1], hub_pins(), base)


def is_ready(plan: ServerEnvPlan) -> bool:
    return (plan.path / READY).exists() and command_unusable_reason(plan.singleuser) is None


@contextlib.contextmanager
def _locked(base: Path) -> Iterator[None]:
    base.mkdir(parents=True, exist_ok=True)
    os.chmod(base, 0o755)  # noqa: S103 - users' servers run from here
    with open(base / ".lock", "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _run(argv: list[str], say: Say, what: str) -> None:
    proc = subprocess.Popen(
        argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, preexec_fn=_umask
    )
    assert proc.stdout is not None
    tail: list[str] = []
    for line in proc.stdout:
        line = line.rstrip()
        tail = [*tail[-30:], line]
        if line.startswith(("Collecting ", "Installing collected", "Successfully installed")):
            say(f"  {line[:150]}")
    if proc.wait() != 0:
        raise ServerEnvError(f"{what} failed ({proc.returncode}):\n" + "\n".join(tail))


def _umask() -> None:
    os.umask(0o022)  # every file readable by every account


def sync_labfleet(plan: ServerEnvPlan) -> None:
    """Copy labfleet's own (pure-Python) package in, when it differs (cheap, every start)."""
    import labfleet

    source = Path(labfleet.__file__).parent
    target = plan.site_packages / "labfleet"
    if target.exists() and _tree_digest(target) == _tree_digest(source):
        return
    staging = plan.site_packages / f".labfleet-{os.getpid()}"
    shutil.rmtree(staging, ignore_errors=True)
    shutil.copytree(source, staging, ignore=shutil.ignore_patterns("__pycache__"))
    _make_readable(staging)
    old = plan.site_packages / f".labfleet-old-{os.getpid()}"
    if target.exists():
        target.rename(old)
    staging.rename(target)
    shutil.rmtree(old, ignore_errors=True)


def _tree_digest(root: Path) -> str:
    digest = hashlib.sha256()
    for path in sorted(root.rglob("*.py")):
        digest.update(str(path.relative_to(root)).encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()


def _make_readable(root: Path) -> None:
    for dirpath, _dirnames, filenames in os.walk(root):
        os.chmod(dirpath, 0o755)  # noqa: S103 - readable by every account
        for name in filenames:
            path = os.path.join(dirpath, name)
            if not os.path.islink(path):
                os.chmod(path, os.stat(path).st_mode | 0o444)


def provision(plan: ServerEnvPlan, say: Say = print) -> ServerEnvPlan:
    """Build the environment if it is missing (minutes, once per host); sync labfleet into it."""
    with _locked(plan.path.parent):
        if not is_ready(plan):
            started = time.monotonic()
            say(
                f"provisioning the users' server environment {plan.path} (once per host; "
                "about a minute: JupyterHub and JupyterLab come from the package index)…"
            )
            # built in place: without the .ready marker (written last) it is never used
            shutil.rmtree(plan.path, ignore_errors=True)  # an interrupted earlier attempt
            say(f"  [1/3] creating a virtualenv with {plan.python}")
            _run([str(plan.python), "-m", "venv", str(plan.path)], say, "creating the virtualenv")
            say(f"  [2/3] installing {' '.join(plan.pins)}")
            pip = [str(plan.path / "bin" / "python"), "-m", "pip", "--disable-pip-version-check"]
            _run([*pip, "install", "--no-input", *plan.pins], say, "installing the server stack")
            say("  [3/3] checking that every account can run it")
            _make_readable(plan.path)
            (plan.path / READY).write_text(f"{time.time()}\n")
            os.chmod(plan.path / READY, 0o644)
            say(f"server environment ready in {time.monotonic() - started:.0f} s")
        sync_labfleet(plan)
        problem = command_unusable_reason(plan.singleuser)
        if problem:
            raise ServerEnvError(f"{plan.singleuser} is not usable by other accounts: {problem}")
    return plan


def needed() -> bool:
    """Whether servers need a provisioned environment: root, and ours is private."""
    ours = Path(sys.prefix) / "bin" / "jupyterhub-singleuser"
    return os.geteuid() == 0 and command_unusable_reason(ours) is not None


def ensure_for_up(say: Say = print) -> Path | None:
    """At ``labfleet up``: the environment users' servers run from (None: ours will do).

    Raises :class:`ServerEnvError` when one is needed and cannot be built; the
    spawner then refuses servers with the same reason instead of running them as root.
    """
    if not needed():
        return None
    plan = default_plan()
    if plan is None:
        raise ServerEnvError(
            "labfleet's Python environment is private (e.g. under /root) and no system "
            "python3 with venv was found to build one for users' servers; install python3-venv, "
            "install labfleet under /opt, or set a profile 'environment:'"
        )
    return provision(plan, say).path


def ready_singleuser() -> Path | None:
    """The provisioned environment's ``jupyterhub-singleuser`` if it is ready (hub side, cheap)."""
    plan = default_plan()
    if plan is None or not is_ready(plan):
        return None
    return plan.singleuser


def default_singleuser() -> Path:
    """The ``jupyterhub-singleuser`` users' servers run by default: the provisioned one when
    labfleet's own environment is private and root runs servers as users, else ours."""
    ours = Path(sys.prefix) / "bin" / "jupyterhub-singleuser"
    if not needed():
        return ours
    return ready_singleuser() or ours


def prepare_for_platform(config_path: Path | None, say: Say = print) -> None:
    """Before the hub starts (``labfleet up``): provision when servers will need it.

    ``isolation: none`` runs servers as labfleet's own account: nothing to build.
    A failure is reported, not fatal: the spawner refuses servers with the reason.
    """
    from labfleet.config.load import load_config

    try:
        isolation = load_config(config_path).local.isolation
    except Exception:  # the hub reports config errors itself, with the key path
        return
    if isolation == "none":
        return
    try:
        ensure_for_up(say)
    except (ServerEnvError, OSError) as exc:
        say(f"warning: users' servers cannot start isolated until this is fixed: {exc}")


if __name__ == "__main__":  # python -m labfleet.spawn.server_env  (CI: provision once)
    try:
        print(
            ensure_for_up() or "not needed: labfleet's own environment is usable by every account"
        )
    except ServerEnvError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(1)
