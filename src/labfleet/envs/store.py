"""A platform's environments on disk: look them up, switch generations, remove, clean up.

Every change takes the platform's lock; readers (the spawner, the form,
``envs list``) take none: they only follow ``current``, which moves in one
``rename``. A generation that is not ``current`` is deleted once no process runs
from it (its path is in no process's command line: servers, kernels and the
environment's idle fork-server all carry it), so running servers keep their files.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from labfleet.config.profiles import is_environment_name
from labfleet.envs.layout import (
    BASE,
    CURRENT,
    LOCK,
    MANIFEST,
    EnvInputError,
    Manifest,
    check_name,
    contents_line,
    generation_of,
    platform_root,
)


@dataclass(frozen=True)
class Environment:
    """One managed environment as found on disk."""

    name: str
    folder: Path  # <root>/<name>: gen-N folders and the ``current`` link
    prefix: Path  # the current generation (a complete venv prefix)
    manifest: Manifest | None

    @property
    def generation(self) -> int:
        return generation_of(self.prefix) or 0


class Store:
    """The environments of one platform (``/opt/labfleet/envs/<tag>``)."""

    def __init__(self, data_dir: Path, base: Path = BASE) -> None:
        self.root = platform_root(data_dir, base)

    def folder(self, name: str) -> Path:
        return self.root / check_name(name)

    def get(self, name: str) -> Environment | None:
        """The environment called ``name``, or None (also for a half-made one: no ``current``)."""
        folder = self.folder(name)
        current = folder / CURRENT
        try:
            prefix = current.resolve(strict=True)
        except (FileNotFoundError, RuntimeError, OSError):
            return None
        if prefix.parent != folder.resolve():
            return None
        return Environment(name, folder, prefix, read_manifest(prefix))

    def require(self, name: str) -> Environment:
        found = self.get(name)
        if found is None:
            have = ", ".join(self.names()) or "none yet"
            raise EnvInputError(
                f"no environment {name!r} on this platform (have: {have}); "
                f"create it with: labfleet envs create {name}"
            )
        return found

    def names(self) -> list[str]:
        if not self.root.is_dir():
            return []
        return sorted(
            entry.name
            for entry in self.root.iterdir()
            if is_environment_name(entry.name) and self.get(entry.name) is not None
        )

    def all(self) -> list[Environment]:
        return [env for env in (self.get(name) for name in self.names()) if env is not None]

    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        """One change at a time per platform (create, install and remove all take it)."""
        self.root.mkdir(parents=True, exist_ok=True)
        for folder in (self.root, *self.root.parents):
            if folder == folder.parent or folder == Path("/opt"):
                break
            os.chmod(folder, 0o755)  # noqa: S103 - every member's account runs from here
        with open(self.root / LOCK, "a") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def switch(self, name: str, prefix: Path) -> None:
        """Point ``current`` at ``prefix`` in one rename; running servers keep their own."""
        folder = self.folder(name)
        link = folder / f".{CURRENT}-{os.getpid()}"
        with contextlib.suppress(FileNotFoundError):
            link.unlink()
        link.symlink_to(prefix.name)
        os.replace(link, folder / CURRENT)

    def remove(self, name: str) -> Path:
        """Take the name away at once (its ``current`` link); its files go when unused.

        The generations stay where they are: a running server imports from their
        paths, so moving them would break its next import or kernel.
        """
        env = self.require(name)
        (env.folder / CURRENT).unlink()
        return env.folder

    def next_generation(self, folder: Path) -> int:
        """One more than any generation in ``folder`` (old ones may still be running)."""
        numbers = [generation_of(p) for p in folder.iterdir()] if folder.is_dir() else []
        return max([0, *(n for n in numbers if n is not None)]) + 1

    def collect(self) -> list[Path]:
        """Delete generations nothing runs from any more: old, removed and half-built ones.

        An environment's folder goes too once it has no ``current`` and no generation left.
        """
        if not self.root.is_dir():
            return []
        busy = paths_in_use()
        removed: list[Path] = []
        for folder in self.root.iterdir():
            if not is_environment_name(folder.name) or not folder.is_dir():
                continue
            current = self.get(folder.name)
            for gen in folder.iterdir():
                if generation_of(gen) is None or (current and gen == current.prefix):
                    continue
                if not _used_by(gen, busy):
                    shutil.rmtree(gen, ignore_errors=True)
                    removed.append(gen)
            if current is None and not any(generation_of(g) is not None for g in folder.iterdir()):
                shutil.rmtree(folder, ignore_errors=True)
                removed.append(folder)
        return removed


def read_manifest(prefix: Path) -> Manifest | None:
    try:
        return Manifest.from_json(json.loads((prefix / MANIFEST).read_text()))
    except (OSError, ValueError, KeyError, TypeError):
        return None


def paths_in_use() -> list[str]:
    """Every argument of every process's command line (to see which generations still run)."""
    found: list[str] = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            raw = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            continue
        found += [arg.decode(errors="replace") for arg in raw.split(b"\0") if arg.startswith(b"/")]
    return found


def _used_by(path: Path, args: list[str]) -> bool:
    """Whether any process argument lies inside ``path``."""
    name = str(path)
    return any(arg == name or arg.startswith(name + "/") for arg in args)


# --- what the spawner and the form ask (cheap, no lock) --------------------------------


def resolve_prefix(environment: str, data_dir: Path) -> str:
    """A profile's ``environment`` → the prefix its server runs from.

    A managed name resolves to its *current generation* (the real folder, not the
    ``current`` link), so the server and every kernel it starts later keep one
    consistent set of files. A path, or a name with no environment, is returned
    as it is: the spawner then reports the missing ``jupyterhub-singleuser``.
    """
    if not is_environment_name(environment):
        return environment
    found = Store(data_dir).get(environment)
    if found is None:
        return str(Store(data_dir).folder(environment) / CURRENT)
    return str(found.prefix)


def describe(environment: str, data_dir: Path) -> str:
    """What a profile's environment holds, in one line for the spawn form ("" if unknown)."""
    if not is_environment_name(environment):
        return ""
    found = Store(data_dir).get(environment)
    if found is None:
        return f"environment {environment} (missing)"
    if found.manifest is None:
        return f"environment {environment}"
    return f"environment {environment}: {contents_line(found.manifest)}"
