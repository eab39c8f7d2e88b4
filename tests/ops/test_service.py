"""`labfleet service`: a systemd unit that systemd accepts and whose command runs the platform."""

from __future__ import annotations

import os
import shlex
import shutil
import signal
import subprocess
import time
from pathlib import Path

import httpx
import pytest

from tests.ops.helpers import cli
from tests.support.platform import free_port

SYSTEMD_ANALYZE = shutil.which("systemd-analyze")


def _unit_values(text: str) -> dict[str, str]:
    values = {}
    for line in text.splitlines():
        if "=" in line and not line.startswith("#"):
            key, value = line.split("=", 1)
            values[key] = value
    return values


def test_install_verify_status_uninstall(tmp_path: Path) -> None:
    data = tmp_path / "Lab Data"
    unit = tmp_path / "units" / "labfleet-lab.service"
    config = tmp_path / "labfleet.yaml"
    config.write_text("culling: {enabled: false}\n")
    done = cli(
        "service", "install", "--data-dir", str(data), "-c", str(config), "--output", str(unit)
    )
    assert done.returncode == 0, done.stderr
    text = unit.read_text()
    values = _unit_values(text)
    assert values.get("ProtectHome") is None, "ProtectHome would hide users' homes"
    assert values["ProtectSystem"] == "true", "full/strict would make /etc read-only (useradd)"
    assert "ProtectControlGroups" not in values and values["Delegate"] == "yes"
    assert values["KillSignal"] == "SIGTERM" and values["Restart"] == "on-failure"
    if SYSTEMD_ANALYZE is None:
        pytest.skip("systemd-analyze is not installed (Debian package systemd)")
    verify = subprocess.run(
        [SYSTEMD_ANALYZE, "verify", str(unit)], capture_output=True, text=True, timeout=60
    )
    assert verify.returncode == 0, verify.stderr
    assert "Unknown" not in verify.stderr and "Invalid" not in verify.stderr, verify.stderr

    status = cli(
        "service", "status", "--data-dir", str(data), "--name", "lab", "--output", str(unit)
    )
    assert status.returncode == 0 and "installed" in status.stdout
    gone = cli("service", "uninstall", "--name", "lab", "--output", str(unit))
    assert gone.returncode == 0 and not unit.exists()
    status = cli("service", "status", "--name", "lab", "--output", str(unit))
    assert status.returncode == 1 and "not installed" in status.stdout
    # the default place and name, derived from the data directory
    default = cli("service", "status", "--data-dir", str(data))
    assert "/etc/systemd/system/labfleet-lab-data.service" in default.stdout


@pytest.mark.integration
def test_the_units_command_runs_the_platform_and_stops_on_sigterm(tmp_path: Path) -> None:
    """What systemd does with the unit: run ExecStart, later send KillSignal to it."""
    port = free_port()
    unit = tmp_path / "labfleet-run.service"
    done = cli(
        "service",
        "install",
        "--data-dir",
        str(tmp_path / "data"),
        "--port",
        str(port),
        "--output",
        str(unit),
    )
    assert done.returncode == 0, done.stderr
    values = _unit_values(unit.read_text())
    log = (tmp_path / "unit.log").open("wb")
    proc = subprocess.Popen(
        shlex.split(values["ExecStart"]),
        cwd=tmp_path,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            assert proc.poll() is None, (tmp_path / "unit.log").read_text()[-4000:]
            try:
                if httpx.get(f"http://127.0.0.1:{port}/hub/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.5)
        else:
            pytest.fail("the unit's command did not bring the platform up")
        proc.send_signal(getattr(signal, values["KillSignal"]))
        assert proc.wait(90) == 0
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        log.close()
