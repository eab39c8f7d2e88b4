"""Small CLI manners (issue 17): a closed pipe is not an error; ``labfleet logs`` reads the logs."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.cli.conftest import cli


def test_schema_into_head_ends_without_a_traceback(tmp_path: Path) -> None:
    pipeline = subprocess.run(  # noqa: S602 - a fixed pipeline: the point is the closed pipe
        f"{sys.executable} -m labfleet.cli.main schema | head -n 3",
        shell=True,
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
    )
    assert pipeline.stdout.count("\n") == 3
    assert "Traceback" not in pipeline.stderr
    assert "BrokenPipe" not in pipeline.stderr


def test_logs_of_hub_and_user_servers(tmp_path: Path, env: dict[str, str]) -> None:
    data = tmp_path / "data"
    (data / "logs" / "servers").mkdir(parents=True)
    (data / "state").mkdir()
    (data / "logs" / "hub.log").write_text("[I hub] one\n[I proxy] routes restored\n[I hub] two\n")
    (data / "logs" / "servers" / "dana.log").write_text("dana's server line\n")
    hub = cli("logs", "hub", "--data-dir", str(data), cwd=tmp_path, env=env)
    assert hub.returncode == 0 and "two" in hub.stdout
    proxy = cli("logs", "proxy", "--data-dir", str(data), cwd=tmp_path, env=env)
    assert proxy.stdout.strip() == "[I proxy] routes restored"
    user = cli("logs", "dana", "--data-dir", str(data), cwd=tmp_path, env=env)
    assert user.stdout.strip() == "dana's server line"
    missing = cli("logs", "nobody", "--data-dir", str(data), cwd=tmp_path, env=env)
    assert missing.returncode == 2 and "no log" in missing.stderr
