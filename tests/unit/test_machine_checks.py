"""``check`` knows the machine (issue 17): impossible values refused, too-big ones warned,
profiles needing absent GPUs left off the spawn form."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from types import SimpleNamespace

import pytest

from labfleet.config.load import ConfigError, parse_text
from labfleet.config.profiles import Machine, machine_problems
from labfleet.spawn.policy import profiles_setting
from labfleet.spawn.profile_form import ProfileChoiceMixin

SMALL = Machine(cpus=2, memory=4 * 2**30, gpus=0)


def test_memory_below_what_a_server_needs_is_refused() -> None:
    with pytest.raises(ConfigError, match="too little for a server"):
        parse_text("profiles: [{slug: t, display_name: T, memory: 10M}]\n")
    parse_text("profiles: [{slug: t, display_name: T, memory: 256Mi}]\n")


def test_more_than_the_machine_has_is_a_warning(tmp_path: Path) -> None:
    config = parse_text(
        "profiles:\n"
        "  - {slug: huge, display_name: Huge, cpu: 64, memory: 64G, gpus: 8, default: true}\n"
        f"  - {{slug: env, display_name: Env, environment: {tmp_path}}}\n"
    )
    errors, warnings = machine_problems(config.profiles, SMALL)
    assert errors == []
    text = "\n".join(warnings)
    assert "64 CPUs; this machine has 2" in text
    assert "GiB of memory" in text
    assert "8 GPU(s) but 0 were found" in text


def test_a_missing_environment_is_an_error() -> None:
    config = parse_text("profiles: [{slug: e, display_name: E, environment: /nonexistent}]\n")
    errors, _ = machine_problems(config.profiles, SMALL)
    assert errors and "/nonexistent does not exist" in errors[0]


class FormSpawner(ProfileChoiceMixin):
    """The real mixin with the few attributes a Spawner provides, and a GPU ledger of N."""

    def __init__(self, profiles: list[dict[str, object]], gpus: int) -> None:
        super().__init__()
        self.labfleet_profiles = profiles
        self.user = SimpleNamespace(name="ann", groups=[], admin=False)
        self.user_options = {}
        self.log = logging.getLogger("test")
        self._gpus = gpus

    def gpu_ledger(self) -> SimpleNamespace:
        return SimpleNamespace(devices=list(range(self._gpus)))


def test_profiles_needing_absent_gpus_are_not_on_the_form() -> None:
    config = parse_text(
        "profiles:\n"
        "  - {slug: cpu, display_name: CPU only, default: true}\n"
        "  - {slug: big, display_name: Big}\n"
        "  - {slug: gpu, display_name: One GPU, gpus: 1}\n"
    )
    profiles = profiles_setting(config.profiles)
    without = asyncio.run(FormSpawner(profiles, 0).get_options_form())
    assert 'value="cpu"' in without and 'value="gpu"' not in without
    with_gpu = asyncio.run(FormSpawner(profiles, 1).get_options_form())
    assert 'value="gpu"' in with_gpu
