"""``labfleet users ...`` against a data directory, through the CLI's ``main``."""

from __future__ import annotations

import contextlib
import io
import subprocess
import sys
from pathlib import Path

from labfleet.auth.accounts import AccountStore
from labfleet.cli.main import main


def _run(
    data_dir: Path, action: str, *args: str, stdin: str = ""
) -> subprocess.CompletedProcess[str]:
    """Run ``labfleet users ACTION`` in this process (fast); stdin is not a terminal."""
    argv = ["users", action, "--data-dir", str(data_dir), *args]
    out, err = io.StringIO(), io.StringIO()
    saved = sys.stdin
    sys.stdin = io.StringIO(stdin)
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                code = main(argv)
            except SystemExit as exit_:  # argparse usage errors
                code = int(exit_.code or 0)
    finally:
        sys.stdin = saved
    return subprocess.CompletedProcess(argv, code, out.getvalue(), err.getvalue())


def test_real_entry_point(tmp_path: Path) -> None:
    command = [sys.executable, "-m", "labfleet.cli.main", "users"]
    added = subprocess.run(
        [*command, "add", "--data-dir", str(tmp_path), "--password-stdin", "Zoe"],
        input="password-1\n",
        capture_output=True,
        text=True,
        check=False,
    )
    assert added.returncode == 0, added.stderr
    listed = subprocess.run(
        [*command, "list", "--data-dir", str(tmp_path)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert listed.stdout.splitlines() == ["zoe\tuser"]


def test_add_list_passwd_admin_remove(tmp_path: Path) -> None:
    added = _run(tmp_path, "add", "Alice", "--admin", "--password-stdin", stdin="password-1\n")
    assert added.returncode == 0, added.stderr
    assert "password-1" not in added.stdout
    assert _run(tmp_path, "list").stdout.splitlines() == ["alice\tadmin"]
    store = AccountStore(tmp_path / "accounts.sqlite")
    assert store.verify("alice", "password-1") is not None

    assert _run(tmp_path, "passwd", "ALICE", "--password-stdin", stdin="password-2").returncode == 0
    assert store.verify("alice", "password-2") is not None
    assert _run(tmp_path, "admin", "alice", "--revoke").returncode == 0
    assert _run(tmp_path, "list").stdout.splitlines() == ["alice\tuser"]
    assert _run(tmp_path, "remove", "alice").returncode == 0
    assert _run(tmp_path, "list").stdout == ""


def test_generated_password_is_printed_once_and_works(tmp_path: Path) -> None:
    result = _run(tmp_path, "add", "bob", "--generate")
    assert result.returncode == 0
    password = result.stdout.split("password: ")[1].strip()
    assert AccountStore(tmp_path / "accounts.sqlite").verify("bob", password) is not None


def test_bad_names_exit_2_and_change_nothing(tmp_path: Path) -> None:
    for name in ["../x", "a/b", "a b", "x" * 300]:
        result = _run(tmp_path, "add", "--password-stdin", "--", name, stdin="password-1\n")
        assert result.returncode == 2, (name, result.stderr)
        assert result.stderr.splitlines()[-1].startswith("error: ")  # after any data-dir note
    result = _run(tmp_path, "add", "--password-stdin", "--", "-rf", stdin="password-1\n")
    assert result.returncode == 2
    assert _run(tmp_path, "list").stdout == ""


def test_errors(tmp_path: Path) -> None:
    assert _run(tmp_path, "add", "bob", "--password-stdin", stdin="short\n").returncode == 2
    assert _run(tmp_path, "add", "bob", "--password-stdin", stdin="").returncode == 2
    assert _run(tmp_path, "add", "bob", "--password-stdin", stdin="password-1").returncode == 0
    again = _run(tmp_path, "add", "BOB", "--password-stdin", stdin="password-1")
    assert again.returncode == 1 and "exists" in again.stderr
    assert _run(tmp_path, "remove", "carol").returncode == 1
    assert _run(tmp_path, "passwd", "carol", "--password-stdin", stdin="password-9").returncode == 1
    assert _run(tmp_path, "admin", "a/b").returncode == 2


def test_min_length_comes_from_the_config(tmp_path: Path) -> None:
    config = tmp_path / "labfleet.yaml"
    config.write_text("auth:\n  password:\n    min_length: 12\n")
    args = ["add", "bob", "--password-stdin", "-c", str(config)]
    assert _run(tmp_path, *args, stdin="elevenchars").returncode == 2
    assert _run(tmp_path, *args, stdin="twelve chars").returncode == 0


def test_users_without_action_is_a_usage_error(tmp_path: Path) -> None:
    assert main(["users"]) == 2
