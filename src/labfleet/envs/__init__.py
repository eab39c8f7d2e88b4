"""Managed server environments: ``labfleet envs create/install/list/remove``.

An environment is a name a profile can give as ``environment: NAME``; its
servers run from the environment's current generation (see ``layout``). Every
change builds a complete new generation beside the old one and switches to it
in one rename, then writes ``.labfleet-generation`` (an increasing integer) in
the new prefix, which the fork-server's key includes, so the next server starts
from a fork-server that imported the new files. Running servers are never
touched: they keep their generation until they stop.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from labfleet.envs.build import BuildError, build_generation
from labfleet.envs.layout import (
    GENERATION_FILE,
    EnvInputError,
    Manifest,
    check_name,
    check_spec,
    contents_line,
    generation_dir,
    merge_specs,
)
from labfleet.envs.store import Environment, Store, describe, resolve_prefix

__all__ = [
    "GENERATION_FILE",
    "BuildError",
    "EnvInputError",
    "Environment",
    "Manifest",
    "Store",
    "check_name",
    "check_spec",
    "contents_line",
    "create",
    "describe",
    "install",
    "merge_specs",
    "remove",
    "resolve_prefix",
]

Say = Callable[[str], None]


def create(
    data_dir: Path, name: str, specs: list[str], stack: Path, say: Say = print
) -> Environment:
    """A new environment with ``specs`` installed; refused if the name exists."""
    check_name(name)
    requested = merge_specs([], specs)  # checks every spec before anything is made
    store = Store(data_dir)
    with store.locked():
        store.collect()
        if store.get(name) is not None:
            raise EnvInputError(
                f"environment {name!r} exists; add packages with: labfleet envs install {name} SPEC"
            )
        folder = store.folder(name)
        folder.mkdir(exist_ok=True)
        folder.chmod(0o755)  # whatever the umask: every member's account passes through it
        generation = store.next_generation(folder)  # 1, unless a removed one still runs
        prefix = generation_dir(folder, generation)
        try:
            build_generation(
                name=name,
                generation=generation,
                prefix=prefix,
                stack=stack,
                requested=requested,
                new_specs=requested,
                previous=None,
                say=say,
            )
        except BaseException:
            store.collect()  # the empty folder: nothing half-made stays
            raise
        store.switch(name, prefix)
        found = store.get(name)
    assert found is not None
    return found


def install(
    data_dir: Path, name: str, specs: list[str], stack: Path, say: Say = print
) -> Environment:
    """Install ``specs`` into a new generation of ``name`` and switch new servers to it."""
    if not specs:
        raise EnvInputError("name at least one package spec to install")
    store = Store(data_dir)
    env = store.require(name)
    for spec in specs:
        check_spec(spec)
    with store.locked():
        env = store.require(name)
        previous = env.manifest
        requested = merge_specs(previous.requested if previous else [], specs)
        generation = store.next_generation(env.folder)
        prefix = generation_dir(env.folder, generation)
        same_stack = previous is not None and Path(previous.base) == stack
        build_generation(
            name=name,
            generation=generation,
            prefix=prefix,
            stack=stack,
            requested=requested,
            # on a new server stack (an upgrade) everything is installed again
            new_specs=list(specs) if same_stack else requested,
            previous=env.prefix if same_stack else None,
            say=say,
        )
        store.switch(name, prefix)
        store.collect()  # the old generation, unless a server still runs from it
        found = store.get(name)
    assert found is not None
    return found


def remove(data_dir: Path, name: str) -> bool:
    """Remove ``name`` now; True when its files are gone too (False: servers still use them)."""
    store = Store(data_dir)
    with store.locked():
        folder = store.remove(name)
        store.collect()
    return not folder.exists()
