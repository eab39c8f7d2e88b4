"""Where a platform's managed environments live, and what their names and specs may be (pure).

Environments are run by every member's own system account, so they cannot live
in the data directory (often under a 0700 ``/root`` or a home). They live under
``/opt/labfleet/envs/<platform tag>/``, next to the provisioned server
environment, one folder per platform so that two platforms on a host never see
or remove each other's environments. The tag is the same hash of the data
directory that names the platform's accounts and control groups.

Inside an environment's folder every change makes a new *generation* (a complete
venv prefix, ``gen-<N>``) and then moves the ``current`` link to it in one
rename. A server resolves ``current`` once when it starts and keeps running from
its generation, so an install never swaps files under a running kernel.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name

from labfleet.config.profiles import ENVIRONMENT_NAME_PATTERN, is_environment_name

BASE = Path("/opt/labfleet/envs")
CURRENT = "current"
GENERATION_PREFIX = "gen-"
#: the fork-server contract: an increasing integer, one per change of the environment
GENERATION_FILE = ".labfleet-generation"
MANIFEST = "labfleet-env.json"
LOCK = ".lock"


class EnvInputError(ValueError):
    """Bad input for an environment command; the message says what to do instead."""


def platform_tag(data_dir: Path) -> str:
    """The platform's id on this host (the same hash ``spawn.accounts.platform_tag`` gives)."""
    return hashlib.sha256(str(data_dir.resolve()).encode()).hexdigest()[:8]


def platform_root(data_dir: Path, base: Path = BASE) -> Path:
    return base / platform_tag(data_dir)


def check_name(name: str) -> str:
    if not is_environment_name(name):
        raise EnvInputError(
            f"{name!r} is not an environment name: use lower-case letters, digits and '-', "
            f"starting with a letter (at most 40 characters; pattern {ENVIRONMENT_NAME_PATTERN})"
        )
    return name


def check_spec(spec: str) -> Requirement:
    """A requirement from the package index: ``name``, ``name==1.2``, ``name[extra]>=1``.

    URLs, paths and pip options are refused: environments install from the
    package index alone, and a spec must never become an option of pip.
    """
    if not spec.strip() or spec.lstrip().startswith("-"):
        raise EnvInputError(
            f"{spec!r} is not a package spec: write e.g. 'tabulate' or 'tabulate==0.9.0'"
        )
    try:
        requirement = Requirement(spec)
    except InvalidRequirement as exc:
        raise EnvInputError(
            f"{spec!r} is not a package spec ({exc}): write e.g. 'tabulate' or 'tabulate==0.9.0'"
        ) from None
    if requirement.url:
        raise EnvInputError(
            f"{spec!r} names a URL or file; environments install from the package index only"
        )
    return requirement


def merge_specs(previous: list[str], added: list[str]) -> list[str]:
    """The requested specs after an install: a package named again replaces its old spec."""
    by_name = {canonicalize_name(check_spec(spec).name): spec for spec in previous}
    for spec in added:
        by_name[canonicalize_name(check_spec(spec).name)] = spec
    return list(by_name.values())


def generation_dir(env_dir: Path, generation: int) -> Path:
    return env_dir / f"{GENERATION_PREFIX}{generation}"


def generation_of(path: Path) -> int | None:
    """``gen-7`` → 7; anything else → None."""
    suffix = path.name.removeprefix(GENERATION_PREFIX)
    if path.name.startswith(GENERATION_PREFIX) and suffix.isdigit():
        return int(suffix)
    return None


@dataclass(frozen=True)
class Manifest:
    """What one generation holds: written when it is built, read by ``list`` and the form."""

    name: str
    generation: int
    created: str
    python: str
    base: str
    requested: list[str]
    packages: dict[str, str] = field(default_factory=dict)  # requested name → installed version
    stack: dict[str, str] = field(default_factory=dict)  # jupyterlab, jupyterhub from the base

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "generation": self.generation,
            "created": self.created,
            "python": self.python,
            "base": self.base,
            "requested": list(self.requested),
            "packages": dict(self.packages),
            "stack": dict(self.stack),
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Manifest:
        return cls(
            name=str(data["name"]),
            generation=int(data["generation"]),
            created=str(data.get("created", "")),
            python=str(data.get("python", "")),
            base=str(data.get("base", "")),
            requested=[str(spec) for spec in data.get("requested", [])],
            packages={str(k): str(v) for k, v in dict(data.get("packages", {})).items()},
            stack={str(k): str(v) for k, v in dict(data.get("stack", {})).items()},
        )


def contents_line(manifest: Manifest) -> str:
    """One line for the spawn form and ``envs list``: packages first, then the stack."""
    packages = ", ".join(f"{name} {version}" for name, version in manifest.packages.items())
    stack = [f"Python {manifest.python}"] if manifest.python else []
    stack += [f"{name} {version}" for name, version in manifest.stack.items()]
    text = packages or "no extra packages"
    return f"{text} (on {', '.join(stack)})" if stack else text
