"""GPU detection parsing and the assignment ledger (device lists injected: CI has no GPU)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from labfleet.spawn.gpus import (
    STALE_RESERVATION_S,
    GpuDevice,
    GpuLedger,
    GpuUnavailable,
    detect_devices,
    detect_with_nvidia_smi,
    devices_from_json,
    gpu_env,
    parse_nvidia_smi_list,
)

SMI_MIG = """\
GPU 0: NVIDIA A100-SXM4-40GB (UUID: GPU-5d5ba0d6-d33d-2b2c-524d-9e3d8d2b8a77)
  MIG 3g.20gb     Device  0: (UUID: MIG-8f6b6f4c-3b8e-5d0a-9b7f-7a9c4b0d1e2f)
  MIG 2g.10gb     Device  1: (UUID: MIG-0c1d2e3f-4a5b-5c6d-8e7f-901a2b3c4d5e)
GPU 1: NVIDIA A100-SXM4-40GB (UUID: GPU-a1b2c3d4-e5f6-a7b8-c9d0-e1f2a3b4c5d6)
"""
SMI_OLD_MIG = """\
GPU 0: A100-SXM4-40GB (UUID: GPU-e91edf3b-b297-37c1-a2a7-7601c3238fa2)
  MIG 1g.5gb Device 0: (UUID: MIG-GPU-e91edf3b-b297-37c1-a2a7-7601c3238fa2/1/0)
"""
TWO = [GpuDevice("GPU-aaaa"), GpuDevice("GPU-bbbb")]


def test_nvidia_smi_mig_instances_replace_their_parent() -> None:
    devices = parse_nvidia_smi_list(SMI_MIG)
    assert [d.id for d in devices] == [
        "MIG-8f6b6f4c-3b8e-5d0a-9b7f-7a9c4b0d1e2f",
        "MIG-0c1d2e3f-4a5b-5c6d-8e7f-901a2b3c4d5e",
        "GPU-a1b2c3d4-e5f6-a7b8-c9d0-e1f2a3b4c5d6",
    ]
    assert devices[0].parent == "GPU-5d5ba0d6-d33d-2b2c-524d-9e3d8d2b8a77"
    assert devices[0].is_mig and not devices[2].is_mig
    assert "3g.20gb" in devices[0].name


def test_old_driver_mig_uuid_form() -> None:
    [device] = parse_nvidia_smi_list(SMI_OLD_MIG)
    assert device.id == "MIG-GPU-e91edf3b-b297-37c1-a2a7-7601c3238fa2/1/0"


def test_nvidia_smi_missing_means_no_detection() -> None:
    def missing(argv: list[str]) -> str:
        raise FileNotFoundError(argv[0])

    assert detect_with_nvidia_smi(missing) is None
    assert detect_with_nvidia_smi(lambda argv: SMI_MIG) is not None


def test_injected_list_wins_and_is_validated(tmp_path: Path) -> None:
    listing = tmp_path / "gpus.json"
    listing.write_text(json.dumps(["GPU-1", {"uuid": "MIG-2", "name": "slice", "parent": "GPU-9"}]))
    found = detect_devices(
        ["GPU-config"], {"LABFLEET_GPU_DEVICES": str(listing)}, nvml=lambda: None, smi=lambda: None
    )
    assert [d.id for d in found.devices] == ["GPU-1", "MIG-2"]
    assert found.devices[1].parent == "GPU-9" and "LABFLEET_GPU_DEVICES" in found.source
    configured = detect_devices(["GPU-config"], {}, nvml=lambda: None, smi=lambda: None)
    assert [d.id for d in configured.devices] == ["GPU-config"]
    assert detect_devices(None, {}, nvml=lambda: None, smi=lambda: None).devices == []
    for bad in ({"uuid": 1}, "not a list", ["GPU-1", "GPU-1"]):
        with pytest.raises(ValueError):
            devices_from_json(bad if isinstance(bad, list | str) else [bad])


def test_exclusive_hands_each_gpu_to_one_server(tmp_path: Path) -> None:
    ledger = GpuLedger(tmp_path / "gpus.json", TWO, "exclusive")
    assert [d.id for d in ledger.assign("alice", 1)] == ["GPU-aaaa"]
    assert [d.id for d in ledger.assign("bob", 1)] == ["GPU-bbbb"]
    assert [d.id for d in ledger.assign("alice", 1)] == ["GPU-aaaa"]  # idempotent
    with pytest.raises(GpuUnavailable, match="no free GPU") as refused:
        ledger.assign("carol", 1)
    assert refused.value.retryable
    ledger.release("alice")
    assert [d.id for d in ledger.assign("carol", 1)] == ["GPU-aaaa"]


def test_impossible_requests_are_not_retryable(tmp_path: Path) -> None:
    with pytest.raises(GpuUnavailable, match="only 2") as too_many:
        GpuLedger(tmp_path / "a.json", TWO).assign("alice", 3)
    assert not too_many.value.retryable
    with pytest.raises(GpuUnavailable, match="no GPU was found") as none:
        GpuLedger(tmp_path / "b.json", []).assign("alice", 1)
    assert not none.value.retryable


def test_shared_mode_spreads_over_least_loaded(tmp_path: Path) -> None:
    ledger = GpuLedger(tmp_path / "gpus.json", TWO, "shared")
    picks = [ledger.assign(name, 1)[0].id for name in ("a", "b", "c", "d")]
    assert picks == ["GPU-aaaa", "GPU-bbbb", "GPU-aaaa", "GPU-bbbb"]
    assert sorted(d.id for d in ledger.assign("e", 2)) == ["GPU-aaaa", "GPU-bbbb"]


def test_assignments_survive_a_restart_and_dead_servers_are_freed(tmp_path: Path) -> None:
    path = tmp_path / "state" / "gpus.json"
    first = GpuLedger(path, TWO, "exclusive")
    first.assign("alice", 1)
    first.bind("alice", os.getpid(), None)  # a live process holds it
    first.assign("bob", 1)
    first.bind("bob", 2**22 + 17, None)  # no such pid: bob's server died unseen
    # a new hub process reads the same file
    second = GpuLedger(path, TWO, "exclusive")
    assert second.assignments() == {"alice": ["GPU-aaaa"], "bob": ["GPU-bbbb"]}
    assert [d.id for d in second.assign("carol", 1)] == ["GPU-bbbb"]
    assert set(json.loads(path.read_text())["servers"]) == {"alice", "carol"}


def test_unbound_reservations_expire(tmp_path: Path) -> None:
    now = [1000.0]
    ledger = GpuLedger(tmp_path / "gpus.json", TWO[:1], "exclusive", clock=lambda: now[0])
    ledger.assign("alice", 1)  # the hub died before launching: never bound to a pid
    with pytest.raises(GpuUnavailable):
        ledger.assign("bob", 1)
    now[0] += STALE_RESERVATION_S + 1
    assert [d.id for d in ledger.assign("bob", 1)] == ["GPU-aaaa"]


def test_devices_removed_from_the_machine_are_not_handed_out(tmp_path: Path) -> None:
    path = tmp_path / "gpus.json"
    GpuLedger(path, TWO).assign("alice", 1)
    smaller = GpuLedger(path, [GpuDevice("GPU-cccc")])
    assert [d.id for d in smaller.assign("alice", 1)] == ["GPU-cccc"]


def test_environment_exposes_uuids_and_hides_gpus_from_others() -> None:
    mig = GpuDevice("MIG-8f6b6f4c-3b8e-5d0a-9b7f-7a9c4b0d1e2f", parent="GPU-1")
    env = gpu_env([mig], "exclusive")
    assert env["CUDA_VISIBLE_DEVICES"] == mig.id == env["NVIDIA_VISIBLE_DEVICES"]
    assert "XLA_PYTHON_CLIENT_MEM_FRACTION" not in env
    none = gpu_env([], "exclusive")
    assert none["CUDA_VISIBLE_DEVICES"] == "" and none["NVIDIA_VISIBLE_DEVICES"] == "void"
    shared = gpu_env(TWO, "shared", memory_fraction=0.25)
    assert shared["CUDA_VISIBLE_DEVICES"] == "GPU-aaaa,GPU-bbbb"
    assert shared["XLA_PYTHON_CLIENT_MEM_FRACTION"] == "0.25"
    assert shared["XLA_PYTHON_CLIENT_PREALLOCATE"] == "false"
    assert shared["TF_FORCE_GPU_ALLOW_GROWTH"] == "true"
    assert shared["LABFLEET_GPU_MEMORY_FRACTION"] == "0.25"
