"""``labfleet status`` for the embedded platform: isolation, limits, GPUs — never pretend."""

from __future__ import annotations

from pathlib import Path

from labfleet.cli.common import EXIT_BAD_INPUT, EXIT_OK
from labfleet.config.model import FleetConfig
from labfleet.up.datadir import runtime_for
from labfleet.up.status import local_status_lines


def run_local_status(config: FleetConfig, data_dir: Path) -> int:
    if not data_dir.is_dir():
        print(f"error: no data directory at {data_dir}; start one with `labfleet up`")
        return EXIT_BAD_INPUT
    runtime = runtime_for(data_dir, "127.0.0.1", 0)
    print(f"data directory: {runtime.data_dir}")
    for line in local_status_lines(config, runtime):
        print(line)
    return EXIT_OK
