"""Fixtures that build labfleet's images with podman from a debootstrapped Debian base.

Everything slow is cached outside the checkout (``LABFLEET_TEST_CACHE``, default
/var/cache/labfleet-test), so a fresh clone on the same machine builds nothing again:
the debootstrapped root file system (a tarball), the imported base image, and podman's own
layer cache, which makes ``labfleet images build`` a matter of seconds when only labfleet's
source changed (its dependencies are a layer of their own, keyed by deploy/constraints.txt).
Skipped, with the reason, only where podman or debootstrap is not installed.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]
CACHE = Path(os.environ.get("LABFLEET_TEST_CACHE", "/var/cache/labfleet-test"))
PREFIX = "localhost/labfleet-test"
CONTAINERS_CONF = """\
[containers]
default_ulimits = ["nofile=20000:20000", "nproc=32768:32768"]
[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"
"""
CA_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")


def debian_mirror(apt: Path = Path("/etc/apt")) -> str:
    """The first Debian mirror among the host's enabled apt sources.

    Only files apt reads count (``sources.list``, ``*.list``, ``*.sources``; not, say, a
    ``*.disabled`` copy), comments are skipped, and only a Debian archive (a URL whose
    path ends in ``/debian``) can serve debootstrap a bookworm base: a third-party
    repository listed first (NodeSource, Google Cloud) cannot.
    """
    sources = [apt / "sources.list", *sorted((apt / "sources.list.d").glob("*"))]
    for path in sources:
        if not path.is_file() or path.suffix not in (".list", ".sources"):
            continue
        for line in path.read_text().splitlines():
            if line.lstrip().startswith("#"):
                continue
            for word in line.split():
                if word.startswith("http") and word.rstrip("/").endswith("/debian"):
                    return word
    return "http://deb.debian.org/debian"


def _run(argv: list[str], **kwargs: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, check=True, text=True, capture_output=True, **kwargs)  # type: ignore[call-overload, no-any-return]


@pytest.fixture(scope="session")
def podman_env() -> Iterator[dict[str, str]]:
    missing = [
        tool
        for tool in ("podman", "runc", "debootstrap", "nsenter", "iptables")
        if shutil.which(tool) is None
    ]
    if missing:
        pytest.skip(f"container tests need {', '.join(missing)} (scripts/test installs them)")
    if os.geteuid() != 0:
        pytest.skip("container tests run podman as root (rootless podman is not set up here)")
    CACHE.mkdir(parents=True, exist_ok=True)
    conf = CACHE / "containers.conf"
    conf.write_text(CONTAINERS_CONF)
    env = {**os.environ, "CONTAINERS_CONF": str(conf)}
    before = set(_podman_cgroups())
    yield env
    # podman (cgroupfs) leaves its parent groups behind, empty: remove the ones it made now
    for group in sorted(set(_podman_cgroups()) - before, key=lambda p: -len(p.parts)):
        with contextlib.suppress(OSError):  # busy: another podman user still has a container
            group.rmdir()


def _podman_cgroups() -> list[Path]:
    """Every ``libpod_parent`` group (and below) under the v1 controllers and v2's root."""
    found: list[Path] = []
    for parent in Path("/sys/fs/cgroup").glob("*/libpod_parent"):
        found.append(parent)
        found += [p for p in parent.rglob("*") if p.is_dir()]
    return found


def _podman(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["podman", *args], env=env, text=True, capture_output=True, check=False)


@pytest.fixture(scope="session")
def base_image(podman_env: dict[str, str]) -> str:
    """Debian bookworm minbase, debootstrapped once and imported into podman."""
    key = hashlib.sha256(f"bookworm minbase {debian_mirror()}".encode()).hexdigest()[:12]
    tag = f"{PREFIX}/bookworm-minbase:{key}"
    if _podman(podman_env, "image", "exists", tag).returncode == 0:
        return tag
    tarball = CACHE / f"bookworm-minbase-{key}.tar"
    if not tarball.is_file():
        rootfs = CACHE / f"rootfs-{key}.tmp"
        shutil.rmtree(rootfs, ignore_errors=True)
        _run(["nice", "debootstrap", "--variant=minbase", "bookworm", str(rootfs), debian_mirror()])
        partial = tarball.with_suffix(".partial")
        _run(["tar", "-C", str(rootfs), "-cf", str(partial), "."])
        partial.rename(tarball)
        shutil.rmtree(rootfs, ignore_errors=True)
    _run(["podman", "import", str(tarball), tag], env=podman_env)
    return tag


@pytest.fixture(scope="session")
def images(podman_env: dict[str, str], base_image: str) -> dict[str, str]:
    """Both images, built through the documented command (``labfleet images build``)."""
    from labfleet import __version__

    result = subprocess.run(
        [
            "nice",
            sys.executable,
            "-m",
            "labfleet.cli.main",
            "images",
            "build",
            "--base",
            base_image,
            "--prefix",
            PREFIX,
            "--engine",
            "podman",
            "--ca-bundle",
            str(CA_BUNDLE),
            "--source",
            str(REPO),
        ],
        env=podman_env,
        text=True,
        capture_output=True,
        check=False,
        timeout=1500,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    # Every source change leaves the previous images untagged (~0.7 GB each): drop those
    # older than an hour (never a build in progress elsewhere), keep the layer cache.
    _podman(podman_env, "image", "prune", "--force", "--filter", "until=1h")
    tags = result.stdout.split()
    expected = [f"{PREFIX}/labfleet-hub:{__version__}", f"{PREFIX}/labfleet-user:{__version__}"]
    assert tags == expected
    return {"hub": tags[0], "user": tags[1]}


@pytest.fixture(scope="module")
def fleet(
    podman_env: dict[str, str], images: dict[str, str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Any]:
    """The rendered hub + proxy in a podman pod, applied to the API double (podman_fleet)."""
    from tests.containers.podman_fleet import podman_fleet

    with podman_fleet(podman_env, images, tmp_path_factory.mktemp("fleet")) as running:
        yield running
