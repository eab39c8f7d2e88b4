"""Pure parts of issue 17: failure causes, sizes, reload notes, status rows."""

from __future__ import annotations

from pathlib import Path

from labfleet.cli.reload import change_notes
from labfleet.spawn.diagnose import (
    LastEndLookup,
    ServerEnd,
    human_bytes,
    likely_cause,
    log_tail,
    oom_message,
    plain_spawn_error,
    record_end,
)
from labfleet.up.running import PlatformStatus, servers_from_users, status_text


def test_likely_causes_in_plain_words() -> None:
    assert "package" in likely_cause(["ModuleNotFoundError: No module named 'x'"], 1)
    assert "port" in likely_cause(["OSError: [Errno 98] Address already in use"], 1)
    assert "disk is full" in likely_cause(["OSError: No space left on device"], 1)
    assert "exited before it was ready" in likely_cause([], 1)
    assert oom_message(2 * 2**30).startswith("killed: used more than 2 GiB")


def test_human_bytes() -> None:
    assert human_bytes(2 * 2**30) == "2 GiB"
    assert human_bytes(400 * 2**20) == "400 MiB"
    assert human_bytes(1.5 * 2**30) == "1.5 GiB"


def test_log_tail_skips_blank_lines(tmp_path: Path) -> None:
    log = tmp_path / "x.log"
    log.write_text("a\n\nb\nc\n")
    assert log_tail(log, 2) == ["b", "c"]
    assert log_tail(tmp_path / "missing.log") == []


def test_plain_spawn_error_has_no_repr() -> None:
    exc = plain_spawn_error(OSError("the disk is read-only"), "bob")
    assert exc.jupyterhub_message.startswith("Your server could not be started: the disk")  # type: ignore[attr-defined]
    assert "OSError(" not in exc.jupyterhub_message  # type: ignore[attr-defined]


def test_last_end_lookup_for_templates(tmp_path: Path) -> None:
    record_end(tmp_path, ServerEnd("bob", 1.0, oom_message(2**30), True, ("line",)))

    class User:
        name = "bob"

    found = LastEndLookup(str(tmp_path))(User())
    assert found is not None and found["oom"] and "1 GiB" in str(found["message"])
    assert LastEndLookup(str(tmp_path))(None) is None
    assert LastEndLookup("x") == LastEndLookup("x")  # settings stay comparable (pure builder)


def test_reload_notes_name_what_needs_a_server_restart() -> None:
    old = {"profiles": [1], "culling": {"timeout": 1}, "proxy": {}}
    changed, notes = change_notes(old, {"profiles": [2], "culling": {"timeout": 2}, "proxy": {}})
    assert changed == ["culling", "profiles"]
    assert len(notes) == 1 and "servers started from now on" in notes[0]
    assert change_notes(None, {})[1], "an unknown previous config is said so"


def test_status_rows_and_text() -> None:
    users = [
        {
            "name": "dana",
            "servers": {
                "": {
                    "ready": True,
                    "started": "2026-01-01T00:00:00Z",
                    "last_activity": "2026-01-01T00:30:00Z",
                    "user_options": {"profile": "big"},
                }
            },
        }
    ]
    rows = servers_from_users(users, now=1767229200.0)  # 2026-01-01T01:00:00Z
    assert rows[0].profile == "big" and rows[0].age_s == 3600 and rows[0].idle_s == 1800
    status = PlatformStatus(True, "/d", "http://localhost:8000/", 1767225600.0, servers=rows)
    text = "\n".join(status_text(status, now=1767229200.0))
    assert "running since" in text and "dana" in text and "big" in text
    stopped = "\n".join(status_text(PlatformStatus(False, "/d", reason="not started")))
    assert "NOT running — not started" in stopped


def test_dashboard_page_shows_ends_to_admins_and_owners_only() -> None:
    from labfleet.services.dashboard import render_page

    ends = [
        ServerEnd("bob", 1.0, oom_message(2**31), True),
        ServerEnd("eve", 2.0, "stopped unexpectedly: x", False),
    ]
    admin = render_page([], "", "root", True, "Team", ends)
    assert "killed: used more than 2 GiB" in admin and "eve" in admin
    bob = render_page([], "", "bob", False, "Team", ends)
    assert "killed: used more than 2 GiB" in bob and "stopped unexpectedly: x" not in bob
    assert bob.count("<svg") == 8  # six usage plots and two GPU plots
