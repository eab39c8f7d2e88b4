"""Build the hub and user images with podman or docker (``labfleet images build``).

Pure part: :func:`image_names` and :func:`build_command` say what gets built and how.
Effects: :func:`prepare_context` assembles a small build context (the engine never sees
the whole checkout, its ``.venv`` or data directories) and :func:`build_images` runs the
engine. A CA bundle passed in reaches only the images' build stage, so pip can trust a
TLS-inspecting proxy without the final images carrying that bundle.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from labfleet import __version__

DEFAULT_PREFIX = "localhost/labfleet"
ENGINES = ("podman", "docker")
#: Image name (without prefix) -> Dockerfile under deploy/.
IMAGES = {"labfleet-hub": "deploy/hub.Dockerfile", "labfleet-user": "deploy/user.Dockerfile"}
#: What the build context holds, relative to the source tree.
CONTEXT_FILES = ("pyproject.toml", "README.md", "src", "deploy")


class ImageBuildError(RuntimeError):
    """A build could not start or the engine failed; the message says which and why."""


@dataclass(frozen=True)
class BuildRequest:
    base: str
    prefix: str = DEFAULT_PREFIX
    engine: str = "podman"
    version: str = __version__
    ca_bundle: Path | None = None


def image_names(prefix: str, version: str = __version__) -> dict[str, str]:
    """``{"labfleet-hub": "PREFIX/labfleet-hub:VERSION", ...}``."""
    prefix = prefix.rstrip("/")
    return {name: f"{prefix}/{name}:{version}" for name in IMAGES}


def build_command(
    engine: str, dockerfile: str, tag: str, base: str, context: Path, version: str
) -> list[str]:
    return [
        engine,
        "build",
        "--file",
        str(context / dockerfile),
        "--build-arg",
        f"BASE={base}",
        "--label",
        f"org.opencontainers.image.version={version}",
        "--tag",
        tag,
        str(context),
    ]


def find_source_tree(start: Path | None = None) -> Path:
    """The checkout holding deploy/hub.Dockerfile: above the package, else the cwd's."""
    candidates = [Path(__file__).resolve().parents[3], (start or Path.cwd()).resolve()]
    for candidate in candidates:
        for directory in (candidate, *candidate.parents):
            if (directory / IMAGES["labfleet-hub"]).is_file() and (
                directory / "pyproject.toml"
            ).is_file():
                return directory
    raise ImageBuildError(
        "deploy/hub.Dockerfile not found: run from a labfleet checkout or pass --source"
    )


def prepare_context(source: Path, into: Path, ca_bundle: Path | None) -> Path:
    """Copy what the Dockerfiles need into ``into`` (pycache and build output left out)."""
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info", "build", "dist")
    for name in CONTEXT_FILES:
        path = source / name
        if path.is_dir():
            shutil.copytree(path, into / name, ignore=ignore)
        elif path.is_file():
            shutil.copy2(path, into / name)
        else:
            raise ImageBuildError(f"{path} is missing from the source tree")
    ca_dir = into / "build-ca"
    ca_dir.mkdir()
    if ca_bundle is not None:
        if not ca_bundle.is_file():
            raise ImageBuildError(f"CA bundle {ca_bundle} does not exist")
        shutil.copyfile(ca_bundle, ca_dir / "ca.crt")
    else:
        (ca_dir / "ca.crt").write_bytes(b"")
    return into


Runner = Callable[[Sequence[str]], int]


def _run(argv: Sequence[str]) -> int:
    """The engine's progress goes to stderr: stdout carries only the built tags."""
    return subprocess.run(list(argv), check=False, stdout=sys.stderr).returncode


def build_images(
    request: BuildRequest, source: Path, workdir: Path, run: Runner = _run
) -> dict[str, str]:
    """Build both images; return their tags. Raises :class:`ImageBuildError` on failure."""
    if request.engine not in ENGINES:
        raise ImageBuildError(f"engine must be one of {', '.join(ENGINES)}")
    if shutil.which(request.engine) is None:
        raise ImageBuildError(f"{request.engine} is not installed (not on PATH)")
    context = prepare_context(source, workdir, request.ca_bundle)
    tags = image_names(request.prefix, request.version)
    for name, dockerfile in IMAGES.items():
        argv = build_command(
            request.engine, dockerfile, tags[name], request.base, context, request.version
        )
        if run(argv) != 0:
            raise ImageBuildError(f"building {tags[name]} failed (command: {' '.join(argv)})")
    return tags
