"""`labfleet init/check/schema` and the extra_config escape hatch (issue 2 items 2 and 5)."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest

from labfleet.cli.main import main
from labfleet.hub.extra_config import check_extra_config
from labfleet.secrets import ensure_secrets


def test_init_then_check(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "labfleet.yaml"
    assert main(["init", str(path)]) == 0
    assert main(["check", str(path)]) == 0
    assert main(["init", str(path)]) == 1  # never overwrite silently
    assert "--force" in capsys.readouterr().err


def test_check_bad_file_exits_2_with_key_path(tmp_path: Path, capsys) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("profiles:\n- {slug: a, display_name: A, memory: 4 G}\n")
    assert main(["check", str(path)]) == 2
    err = capsys.readouterr().err
    assert "profiles[0].memory: '4 G' is not a size; did you mean '4G'?" in err


def test_check_missing_file_exits_2(tmp_path: Path) -> None:
    assert main(["check", str(tmp_path / "none.yaml")]) == 2


def test_up_refuses_invalid_config_before_starting(tmp_path: Path, capsys) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("proxy: {kind: nginx}\n")
    assert main(["up", "-c", str(path), "--data-dir", str(tmp_path / "data")]) == 2
    assert not (tmp_path / "data").exists(), "nothing may be created for an invalid config"


def test_schema_is_json_with_sections(capsys) -> None:
    assert main(["schema"]) == 0
    schema = json.loads(capsys.readouterr().out)
    assert {"hub", "auth", "profiles", "culling", "proxy"} <= set(schema["properties"])
    assert schema["additionalProperties"] is False


def test_extra_config_checks() -> None:
    assert check_extra_config({"JupyterHub": {"shutdown_on_logout": True}}) == []
    assert check_extra_config({"LocalSpawner": {"homes_dir": "/x"}}) == []
    (typo,) = check_extra_config({"JupyterHub": {"shutdown_on_logut": True}})
    assert "did you mean 'shutdown_on_logout'" in typo
    (klass,) = check_extra_config({"Spawnr": {}})
    assert "unknown class" in klass and "Spawner" in klass
    (value,) = check_extra_config({"Spawner": {"start_timeout": "soon"}})
    assert "start_timeout" in value


def test_secrets_are_private_and_stable(tmp_path: Path) -> None:
    first = ensure_secrets(tmp_path / "secrets")
    again = ensure_secrets(tmp_path / "secrets")
    assert first == again, "secrets must never be regenerated"
    assert stat.S_IMODE((tmp_path / "secrets").stat().st_mode) == 0o700
    for path in (tmp_path / "secrets").iterdir():
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert len({first.cookie_secret, first.proxy_token, first.crypt_key}) == 3
