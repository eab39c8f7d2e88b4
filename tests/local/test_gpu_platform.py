"""GPU assignment through the real platform, with the device list injected (no GPU in CI).

``LABFLEET_GPU_DEVICES`` points the hub at a JSON list of one full GPU and one
MIG instance. Exclusive mode: two servers get one device each, a third is
refused with a clear message; the assignments survive a hub crash and
restart; stopping a server frees its device for the next one.
"""

from __future__ import annotations

import json
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.local.platforms import add_and_login, new_platform, remove_accounts, unique_names
from tests.support.client import HubUser, run_code
from tests.support.platform import Platform

pytestmark = pytest.mark.integration

GPU = "GPU-5d5ba0d6-d33d-2b2c-524d-9e3d8d2b8a77"
MIG = "MIG-8f6b6f4c-3b8e-5d0a-9b7f-7a9c4b0d1e2f"
SHOW_ENV = (
    "import os; print(os.environ['CUDA_VISIBLE_DEVICES'], os.environ['NVIDIA_VISIBLE_DEVICES'])"
)


@pytest.fixture(scope="module")
def platform(shared_tmp: Path, user_environment: Path) -> Iterator[Platform]:
    env = user_environment
    # An environment folder that exists (check refuses a missing one) but holds no
    # server: the spawn-time check must still name what is missing.
    hollow = shared_tmp / "hollow-env"
    hollow.mkdir(exist_ok=True)
    running = new_platform(
        shared_tmp,
        (
            "culling: {enabled: false}\n"
            "local: {gpus: {mode: exclusive, wait: 2s, memory_fraction: 0.5}}\n"
            "profiles:\n"
            f"  - {{slug: cpu, display_name: CPU, default: true, environment: {env}}}\n"
            f"  - {{slug: gpu, display_name: One GPU, gpus: 1, environment: {env}}}\n"
            f"  - {{slug: broken, display_name: Broken, environment: {hollow}}}\n"
        ),
    )
    devices = running.data_dir.parent / "devices.json"
    devices.write_text(json.dumps([GPU, {"uuid": MIG, "name": "A100 MIG 3g.20gb"}]))
    saved = os.environ.get("LABFLEET_GPU_DEVICES")
    os.environ["LABFLEET_GPU_DEVICES"] = str(devices)  # inherited by labfleet up and the hub
    try:
        running.start()
        yield running
    finally:
        running.stop()
        if saved is None:
            os.environ.pop("LABFLEET_GPU_DEVICES", None)
        else:
            os.environ["LABFLEET_GPU_DEVICES"] = saved


def _ledger(platform: Platform) -> dict[str, list[str]]:
    data = json.loads((platform.data_dir / "state" / "gpus.json").read_text())
    return {owner: entry["devices"] for owner, entry in data["servers"].items()}


def _restart_hub(platform: Platform) -> None:
    """Kill the hub process (a crash); the supervisor starts a new one, servers keep running."""
    pid = int((platform.data_dir / "state" / "jupyterhub.pid").read_text())
    os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        if "restarting it" in platform.log():
            try:
                if httpx.get(f"{platform.url}/hub/health", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
        time.sleep(0.25)
    raise AssertionError(f"the hub did not come back:\n{platform.log()}")


def test_exclusive_assignment_refusal_restart_and_release(platform: Platform) -> None:
    names = unique_names("gia", "gus", "gil")
    users: list[HubUser] = []
    try:
        users = [add_and_login(platform, name) for name in names]
        first, second, third = users
        for user in (first, second):
            user.start_server({"profile": "gpu"}).raise_for_status()
        for user in (first, second):
            user.wait_ready()
        tokens = [user.new_token() for user in users[:2]]
        seen = [
            run_code(u.server_url(), t, SHOW_ENV).split()
            for u, t in zip(users, tokens, strict=False)
        ]
        assert sorted(ids[0] for ids in seen) == sorted([GPU, MIG])
        assert all(ids[0] == ids[1] for ids in seen), "CUDA_ and NVIDIA_VISIBLE_DEVICES agree"
        fraction = run_code(
            first.server_url(),
            tokens[0],
            "import os; print(os.environ['XLA_PYTHON_CLIENT_MEM_FRACTION'])",
        )
        assert fraction.strip() == "0.5"

        refused = third.start_server({"profile": "gpu"})
        assert refused.status_code == 503
        assert "no free GPU" in refused.json()["message"]
        assert not third.server_model(), "a refused spawn leaves no server behind"
        broken = third.start_server({"profile": "broken"})
        assert broken.status_code == 500
        assert "hollow-env/bin/jupyterhub-singleuser is missing" in broken.json()["message"]

        held = _ledger(platform)
        assert sorted(d for devices in held.values() for d in devices) == sorted([GPU, MIG])
        _restart_hub(platform)
        assert _ledger(platform) == held, "assignments survive a hub restart"
        assert third.start_server({"profile": "gpu"}).status_code == 503

        first_device = seen[0][0]
        first.stop_server()
        first.wait_stopped()
        assert first_device not in [d for devices in _ledger(platform).values() for d in devices]
        third.start_server({"profile": "gpu"}).raise_for_status()
        assert [first_device] in _ledger(platform).values()
        third.wait_ready()
    except Exception:
        print(platform.log())
        raise
    finally:
        for user in users:
            user.close()
        platform.stop()
        remove_accounts(names, platform.data_dir)
