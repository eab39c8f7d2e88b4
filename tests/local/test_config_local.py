"""The ``local:`` section, its translation to LocalSpawner traits, and the honest banner."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from labfleet.config.load import ConfigError, parse_text
from labfleet.hub.settings import local_spawner_settings
from labfleet.runtime import Runtime
from labfleet.up.status import local_status_lines, startup_warnings


def test_defaults_are_automatic() -> None:
    local = parse_text("").local
    assert (local.isolation, local.limits, local.gpus.mode) == ("auto", "auto", "exclusive")
    assert local.shared.data == "shared/data" and local.gpus.devices is None


@pytest.mark.parametrize(
    ("text", "path", "hint"),
    [
        ("local: {isolation: users}\n", "local.isolation", "system-users"),
        ("local: {limits: v3}\n", "local.limits", "v2"),
        ("local: {gpus: {mode: split}}\n", "local.gpus.mode", "shared"),
        ("local: {gpus: {devices: ['GPU-1 ; rm']}}\n", "local.gpus.devices", "not a GPU id"),
        ("local: {gpus: {devices: [GPU-1, GPU-1]}}\n", "local.gpus.devices", "twice"),
        ("local: {gpus: {memory_fraction: 1.5}}\n", "local.gpus.memory_fraction", ""),
        ("local: {shared: {data: ../etc}}\n", "local.shared.data", ".."),
        ("local: {pids_max: 3}\n", "local.pids_max", ""),
        ("local: {isolaton: none}\n", "local", "isolaton"),
    ],
)
def test_mistakes_name_their_key(text: str, path: str, hint: str) -> None:
    with pytest.raises(ConfigError) as error:
        parse_text(text)
    message = str(error.value)
    assert path in message and hint in message


def test_settings_carry_the_section(tmp_path: Path) -> None:
    config = parse_text(
        "local:\n  isolation: none\n  limits: v1\n  pids_max: 300\n"
        "  shared: {data: /srv/data, scratch: null}\n"
        "  gpus: {mode: shared, devices: [MIG-abc], memory_fraction: 0.5, wait: 1m}\n"
    )
    traits = local_spawner_settings(config, Runtime(data_dir=tmp_path))["LocalSpawner"]
    assert traits["isolation"] == "none" and traits["limits_backend"] == "v1"
    assert traits["pids_max"] == 300
    assert traits["shared_data_dir"] == "/srv/data" and traits["shared_scratch_dir"] == ""
    assert traits["gpu_devices"] == ["MIG-abc"] and traits["gpu_mode"] == "shared"
    assert traits["gpu_memory_fraction"] == 0.5 and traits["gpu_wait"] == 60.0
    assert traits["gpu_state_file"] == str(tmp_path / "state" / "gpus.json")
    default = local_spawner_settings(parse_text(""), Runtime(data_dir=tmp_path))["LocalSpawner"]
    assert default["shared_data_dir"] == str(tmp_path / "shared" / "data")


def test_banner_never_claims_isolation_that_is_off(tmp_path: Path) -> None:
    config = parse_text(
        "local: {isolation: none, limits: none}\n"
        "profiles: [{slug: big, display_name: Big, memory: 1G, gpus: 2}]\n"
    )
    warnings = "\n".join(startup_warnings(config, Runtime(data_dir=tmp_path)))
    assert "NOT isolated" in warnings and "local.isolation is none" in warnings
    assert "limits of profiles are NOT enforced" in warnings
    assert "asks for 2 GPU(s) but 0 were found" in warnings
    lines = "\n".join(local_status_lines(config, Runtime(data_dir=tmp_path)))
    assert "isolation: OFF" in lines and "limits: NOT enforced" in lines
    assert "GPUs: none found" in lines


def test_status_lists_injected_gpus_and_assignments(tmp_path: Path) -> None:
    state = tmp_path / "state"
    state.mkdir()
    (state / "gpus.json").write_text(
        '{"version": 1, "servers": {"alice": {"devices": ["GPU-1"], "pid": 1},'
        ' "bob": {"devices": ["MIG-2"], "pid": 4194320}}}'
    )
    config = parse_text("local: {gpus: {devices: [GPU-1, MIG-2]}}\n")
    lines = "\n".join(local_status_lines(config, Runtime(data_dir=tmp_path)))
    assert "GPUs: 2 found via config" in lines and "alice: GPU-1\n" in lines
    assert "bob: MIG-2 (server gone" in lines
    assert "cooperative" in lines


def test_not_root_says_so(user_environment: Path, shared_tmp: Path) -> None:
    """As an unprivileged account (nobody, when the tests run as root): no isolation, no limits."""
    code = (
        "from pathlib import Path\n"
        "from labfleet.config.load import parse_text\n"
        "from labfleet.runtime import Runtime\n"
        "from labfleet.up.status import startup_warnings\n"
        "config = parse_text('profiles: [{slug: s, display_name: S, memory: 1G}]')\n"
        f"runtime = Runtime(data_dir=Path({str(shared_tmp)!r}))\n"
        "print('\\n'.join(startup_warnings(config, runtime)))\n"
    )
    as_nobody = {"user": 65534, "group": 65534, "extra_groups": []} if os.geteuid() == 0 else {}
    result = subprocess.run(
        [str(user_environment / "bin" / "python"), "-c", code],
        capture_output=True,
        text=True,
        check=True,
        cwd="/",
        timeout=60,
        **as_nobody,
    )
    assert "users are NOT isolated" in result.stdout
    assert "labfleet is not running as root" in result.stdout
    assert "limits of profiles are NOT enforced" in result.stdout
    assert "needs root" in result.stdout
