"""The users' server environment: where it goes and when it is rebuilt (pure parts)."""

from __future__ import annotations

from pathlib import Path

from labfleet.spawn.server_env import hub_pins, plan_for


def test_plan_is_stable_and_changes_with_interpreter_or_pins(tmp_path: Path) -> None:
    pins = ("jupyterhub==6.1.1", "jupyterlab==4.4.0")
    plan = plan_for(Path("/usr/bin/python3"), "3.11", pins, tmp_path)
    assert plan == plan_for(Path("/usr/bin/python3"), "3.11", pins, tmp_path)
    assert plan.path.parent == tmp_path and plan.path.name.startswith("server-env-")
    assert plan.singleuser == plan.path / "bin" / "jupyterhub-singleuser"
    assert plan.site_packages == plan.path / "lib" / "python3.11" / "site-packages"
    others = {
        plan_for(Path("/usr/local/bin/python3"), "3.11", pins, tmp_path).path,
        plan_for(Path("/usr/bin/python3"), "3.12", pins, tmp_path).path,
        plan_for(Path("/usr/bin/python3"), "3.11", ("jupyterhub==6.2.0", pins[1]), tmp_path).path,
    }
    assert plan.path not in others and len(others) == 3


def test_pins_are_the_hubs_own_versions() -> None:
    names = [pin.split("==")[0] for pin in hub_pins()]
    assert names[:2] == ["jupyterhub", "jupyterlab"]
    assert all("==" in pin and pin.split("==")[1] for pin in hub_pins())
