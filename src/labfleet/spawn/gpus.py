"""GPUs on one machine: find them, hand them to servers, remember who has which.

* Detection: an injected list (``LABFLEET_GPU_DEVICES`` = a JSON file, or
  ``local.gpus.devices``), else NVML (``pynvml``, when installed), else
  ``nvidia-smi -L``. A GPU split into MIG instances offers its instances,
  not itself (CUDA cannot compute on a MIG-enabled parent).
* Assignment: :class:`GpuLedger` keeps ``server slug → device ids`` in
  ``<data_dir>/state/gpus.json`` (locked, replaced atomically) so it survives
  a hub restart; exclusive mode gives a device to one server at a time,
  shared mode spreads servers over the least-loaded devices.
* Exposure: ``CUDA_VISIBLE_DEVICES`` / ``NVIDIA_VISIBLE_DEVICES`` with the
  UUIDs, plus cooperative memory caps for the common frameworks. These are
  environment variables, not a device cgroup: a user who unsets them can
  see every GPU. The docs and ``labfleet status`` say so.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import subprocess
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from labfleet.spawn.processes import is_alive

ENV_DEVICES = "LABFLEET_GPU_DEVICES"
_GPU_LINE = re.compile(r"GPU (\d+): (.*?) \(UUID: (GPU-[^)\s]+)\)")
_MIG_LINE = re.compile(r"\s*MIG (\S+)\s+Device\s+(\d+): \(UUID: (MIG-[^)\s]+)\)")
#: an unbound reservation (hub died between reserving and launching) expires
STALE_RESERVATION_S = 600.0


class GpuUnavailable(RuntimeError):
    """No GPU can be given now; the message is shown to the user as it is.

    ``retryable`` is False when waiting cannot help (more GPUs asked for than exist).
    """

    def __init__(self, message: str, retryable: bool = True) -> None:
        super().__init__(message)
        self.retryable = retryable


@dataclass(frozen=True)
class GpuDevice:
    """One assignable device: a whole GPU or one MIG instance."""

    id: str  # what CUDA_VISIBLE_DEVICES gets: a UUID when known, else an index
    name: str = ""
    parent: str | None = None  # the GPU UUID a MIG instance belongs to

    @property
    def is_mig(self) -> bool:
        return self.id.startswith("MIG-")


# --- detection (pure parsers first) ----------------------------------------------


def parse_nvidia_smi_list(text: str) -> list[GpuDevice]:
    """Devices from ``nvidia-smi -L``, MIG instances replacing their parent GPU."""
    gpus: list[tuple[GpuDevice, list[GpuDevice]]] = []
    for line in text.splitlines():
        gpu = _GPU_LINE.fullmatch(line.strip())
        if gpu:
            gpus.append((GpuDevice(id=gpu.group(3), name=gpu.group(2)), []))
            continue
        mig = _MIG_LINE.fullmatch(line.rstrip())
        if mig and gpus:
            parent = gpus[-1][0]
            gpus[-1][1].append(
                GpuDevice(
                    id=mig.group(3), name=f"{parent.name} MIG {mig.group(1)}", parent=parent.id
                )
            )
    devices: list[GpuDevice] = []
    for gpu_device, migs in gpus:
        devices.extend(migs or [gpu_device])
    return devices


def devices_from_json(data: Any) -> list[GpuDevice]:
    """Devices from an injected list: ``["GPU-…", …]`` or ``[{"uuid": …, "name": …}, …]``."""
    if not isinstance(data, list):
        raise ValueError("the GPU device list must be a JSON array")
    devices: list[GpuDevice] = []
    for item in data:
        if isinstance(item, str):
            devices.append(GpuDevice(id=item))
        elif isinstance(item, dict) and isinstance(item.get("uuid") or item.get("id"), str):
            devices.append(
                GpuDevice(
                    id=str(item.get("uuid") or item.get("id")),
                    name=str(item.get("name", "")),
                    parent=item.get("parent") if isinstance(item.get("parent"), str) else None,
                )
            )
        else:
            raise ValueError(f"{item!r} is not a GPU device (a UUID string or {{'uuid': ...}})")
    if len({d.id for d in devices}) != len(devices):
        raise ValueError("the GPU device list names a device twice")
    return devices


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def detect_with_nvml() -> list[GpuDevice] | None:
    """Devices through NVML; None when ``pynvml`` or the driver is missing."""
    try:
        import pynvml  # type: ignore[import-not-found]  # optional
    except ImportError:
        return None
    nvml: Any = pynvml
    try:
        nvml.nvmlInit()
    except Exception:  # any NVML failure means "no NVML here"
        return None
    devices: list[GpuDevice] = []
    try:
        for index in range(nvml.nvmlDeviceGetCount()):
            handle = nvml.nvmlDeviceGetHandleByIndex(index)
            gpu = GpuDevice(
                id=_text(nvml.nvmlDeviceGetUUID(handle)), name=_text(nvml.nvmlDeviceGetName(handle))
            )
            devices.extend(_nvml_migs(nvml, handle, gpu) or [gpu])
    finally:
        with contextlib.suppress(Exception):
            nvml.nvmlShutdown()
    return devices


def _nvml_migs(nvml: Any, handle: Any, gpu: GpuDevice) -> list[GpuDevice]:
    try:
        current, _pending = nvml.nvmlDeviceGetMigMode(handle)
    except Exception:  # not MIG capable
        return []
    if current != getattr(nvml, "NVML_DEVICE_MIG_ENABLE", 1):
        return []
    migs: list[GpuDevice] = []
    for slot in range(nvml.nvmlDeviceGetMaxMigDeviceCount(handle)):
        try:
            mig = nvml.nvmlDeviceGetMigDeviceHandleByIndex(handle, slot)
        except Exception:  # noqa: S112 - an empty slot
            continue
        migs.append(
            GpuDevice(id=_text(nvml.nvmlDeviceGetUUID(mig)), name=f"{gpu.name} MIG", parent=gpu.id)
        )
    return migs


def detect_with_nvidia_smi(
    run: Callable[[list[str]], str] | None = None,
) -> list[GpuDevice] | None:
    """Devices from ``nvidia-smi -L``; None when the tool is missing or fails."""

    def default_run(argv: list[str]) -> str:
        return subprocess.run(argv, capture_output=True, text=True, timeout=20, check=True).stdout

    try:
        output = (run or default_run)(["nvidia-smi", "-L"])
    except (OSError, subprocess.SubprocessError):
        return None
    return parse_nvidia_smi_list(output)


@dataclass(frozen=True)
class Detected:
    devices: list[GpuDevice]
    source: str  # for humans: "LABFLEET_GPU_DEVICES", "config", "NVML", "nvidia-smi", "none"


def detect_devices(
    configured: Sequence[str] | None = None,
    environ: Mapping[str, str] | None = None,
    nvml: Callable[[], list[GpuDevice] | None] = detect_with_nvml,
    smi: Callable[[], list[GpuDevice] | None] = detect_with_nvidia_smi,
) -> Detected:
    """The devices to hand out, and where the list came from."""
    env = os.environ if environ is None else environ
    injected = env.get(ENV_DEVICES)
    if injected:
        data = json.loads(Path(injected).read_text())
        return Detected(devices_from_json(data), f"{ENV_DEVICES}={injected}")
    if configured is not None:
        return Detected([GpuDevice(id=d) for d in configured], "config (local.gpus.devices)")
    for source, find in (("NVML", nvml), ("nvidia-smi", smi)):
        found = find()
        if found is not None:
            return Detected(found, source)
    return Detected([], "no NVML, no nvidia-smi")


# --- assignment ------------------------------------------------------------------


@dataclass
class _Entry:
    devices: list[str]
    pid: int | None = None
    ticks: int | None = None
    reserved_at: float = 0.0

    def to_json(self) -> dict[str, Any]:
        return {
            "devices": self.devices,
            "pid": self.pid,
            "ticks": self.ticks,
            "reserved_at": self.reserved_at,
        }


def _entry_from_json(data: Any) -> _Entry | None:
    if not isinstance(data, dict) or not isinstance(data.get("devices"), list):
        return None
    pid, ticks = data.get("pid"), data.get("ticks")
    return _Entry(
        devices=[str(d) for d in data["devices"]],
        pid=pid if isinstance(pid, int) else None,
        ticks=ticks if isinstance(ticks, int) else None,
        reserved_at=float(data.get("reserved_at") or 0.0),
    )


class GpuLedger:
    """Who holds which GPU, persisted in a JSON file shared by hub restarts and the CLI."""

    def __init__(
        self,
        path: Path,
        devices: Sequence[GpuDevice],
        mode: str = "exclusive",
        alive: Callable[[int, int | None], bool] = is_alive,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if mode not in ("exclusive", "shared"):
            raise ValueError(f"GPU mode {mode!r}: expected 'exclusive' or 'shared'")
        self.path = path
        self.devices = list(devices)
        self.mode = mode
        self._alive = alive
        self._clock = clock

    # -- file -------------------------------------------------------------------
    @contextlib.contextmanager
    def _locked(self) -> Iterator[dict[str, _Entry]]:
        """Read-modify-write under an exclusive lock; the file is replaced atomically."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        lock_path = self.path.with_name(self.path.name + ".lock")
        fd = os.open(lock_path, os.O_CREAT | os.O_RDWR, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            entries = self._read()
            before = json.dumps({k: v.to_json() for k, v in entries.items()}, sort_keys=True)
            yield entries
            after = {k: v.to_json() for k, v in entries.items()}
            if json.dumps(after, sort_keys=True) != before:
                tmp = self.path.with_name(self.path.name + ".tmp")
                tmp.write_text(json.dumps({"version": 1, "servers": after}, indent=1))
                os.chmod(tmp, 0o644)
                os.replace(tmp, self.path)
        finally:
            os.close(fd)

    def _read(self) -> dict[str, _Entry]:
        try:
            data = json.loads(self.path.read_text())
        except (OSError, ValueError):
            return {}
        servers = data.get("servers") if isinstance(data, dict) else None
        entries: dict[str, _Entry] = {}
        for owner, raw in (servers or {}).items():
            entry = _entry_from_json(raw)
            if entry is not None:
                entries[str(owner)] = entry
        return entries

    def _prune(self, entries: dict[str, _Entry]) -> None:
        """Forget servers that died while nobody watched, and stale reservations."""
        now = self._clock()
        for owner, entry in list(entries.items()):
            if entry.pid is not None:
                if not self._alive(entry.pid, entry.ticks):
                    del entries[owner]
            elif now - entry.reserved_at > STALE_RESERVATION_S:
                del entries[owner]

    # -- queries ------------------------------------------------------------------
    def assignments(self) -> dict[str, list[str]]:
        with self._locked() as entries:
            return {owner: list(entry.devices) for owner, entry in entries.items()}

    def assigned(self, owner: str) -> list[GpuDevice]:
        by_id = {d.id: d for d in self.devices}
        with self._locked() as entries:
            entry = entries.get(owner)
            return [by_id[d] for d in entry.devices if d in by_id] if entry else []

    # -- changes ------------------------------------------------------------------
    def assign(self, owner: str, count: int) -> list[GpuDevice]:
        """Give ``owner`` ``count`` devices (idempotent: a held assignment is kept).

        Raises :class:`GpuUnavailable` with a message meant for the user.
        """
        if count <= 0:
            self.release(owner)
            return []
        if not self.devices:
            raise GpuUnavailable(
                f"this profile needs {count} GPU(s), but no GPU was found on this machine",
                retryable=False,
            )
        if count > len(self.devices):
            raise GpuUnavailable(
                f"this profile needs {count} GPUs, but this machine has only {len(self.devices)}",
                retryable=False,
            )
        by_id = {d.id: d for d in self.devices}
        with self._locked() as entries:
            self._prune(entries)
            held = entries.get(owner)
            if held and len(held.devices) == count and all(d in by_id for d in held.devices):
                return [by_id[d] for d in held.devices]
            entries.pop(owner, None)
            chosen = self._choose(entries, count)
            entries[owner] = _Entry(devices=[d.id for d in chosen], reserved_at=self._clock())
            return chosen

    def _choose(self, entries: Mapping[str, _Entry], count: int) -> list[GpuDevice]:
        load = {d.id: 0 for d in self.devices}
        for entry in entries.values():
            for device in entry.devices:
                if device in load:
                    load[device] += 1
        if self.mode == "exclusive":
            free = [d for d in self.devices if load[d.id] == 0]
            if len(free) < count:
                raise GpuUnavailable(
                    f"no free GPU: this profile needs {count}, {len(free)} of "
                    f"{len(self.devices)} are free (each GPU belongs to one server at a time). "
                    "Try again when someone stops their server, or choose a profile without GPUs."
                )
            return free[:count]
        order = sorted(self.devices, key=lambda d: load[d.id])  # stable: ties keep device order
        return order[:count]

    def bind(self, owner: str, pid: int, ticks: int | None) -> None:
        """Record the server process holding ``owner``'s devices (to notice its death)."""
        with self._locked() as entries:
            entry = entries.get(owner)
            if entry is not None:
                entry.pid, entry.ticks = pid, ticks

    def release(self, owner: str) -> None:
        with self._locked() as entries:
            entries.pop(owner, None)


# --- exposure ---------------------------------------------------------------------


def gpu_env(
    devices: Sequence[GpuDevice], mode: str = "exclusive", memory_fraction: float | None = None
) -> dict[str, str]:
    """Environment for a server holding ``devices`` (none: every GPU hidden).

    Frameworks grab a whole GPU by default, which breaks sharing; shared mode
    asks them to allocate on demand. ``memory_fraction`` is a cooperative cap:
    JAX/XLA read it directly, TensorFlow grows on demand, PyTorch users read
    ``LABFLEET_GPU_MEMORY_FRACTION`` (``torch.cuda.set_per_process_memory_fraction``).
    """
    ids = ",".join(d.id for d in devices)
    env = {
        "CUDA_VISIBLE_DEVICES": ids,
        "NVIDIA_VISIBLE_DEVICES": ids or "void",
        "CUDA_DEVICE_ORDER": "PCI_BUS_ID",
    }
    if devices and (mode == "shared" or memory_fraction is not None):
        env["XLA_PYTHON_CLIENT_PREALLOCATE"] = "false"
        env["TF_FORCE_GPU_ALLOW_GROWTH"] = "true"
    if devices and memory_fraction is not None:
        fraction = f"{memory_fraction:g}"
        env["XLA_PYTHON_CLIENT_MEM_FRACTION"] = fraction
        env["LABFLEET_GPU_MEMORY_FRACTION"] = fraction
    return env
