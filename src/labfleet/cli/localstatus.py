"""``labfleet status`` for the embedded platform: running or not, who has servers, and
what this machine really enforces (isolation, limits, GPUs) — never pretend.

Exit codes (an interface: scripts rely on them): 0 when the platform runs, 3 when it
does not (never started here, stopped, or its hub does not answer).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from labfleet.cli.common import EXIT_NOT_RUNNING, EXIT_OK, is_data_dir
from labfleet.config.model import FleetConfig
from labfleet.hub.free_space import write_probe
from labfleet.hub.storage_errors import StorageFault, probe_problem
from labfleet.runtime import Runtime
from labfleet.tls.service import certificate_status
from labfleet.up.running import platform_status, status_text
from labfleet.up.status import local_status_lines


def add_local_status_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="one JSON object, for scripts")


def wants_local_status(args: argparse.Namespace) -> bool:
    """Local unless asked for the cluster; the default data dir only when it exists."""
    if args.local:
        return True
    if args.cluster or args.kubeconfig or args.context:
        return False
    if getattr(args, "data_dir_source", "--data-dir") != "the default ./labfleet-data":
        return True  # named explicitly, or the running platform's
    return bool(is_data_dir(args.data_dir))


def storage_fault_line(data_dir: Path) -> str | None:
    """A line when the data dir cannot be written (read-only, full, failing disk), else None.

    Logins, spawns and saves then fail; ``status`` says so and why, not only "up".
    """
    if not is_data_dir(data_dir):
        return None
    failed = write_probe(data_dir)
    problem = probe_problem(failed) if failed is not None else None
    if problem is None:
        return None
    what = {
        StorageFault.FULL: "FULL",
        StorageFault.READ_ONLY: "READ-ONLY",
        StorageFault.IO_ERROR: "FAILING (I/O errors)",
    }.get(problem.fault, problem.fault.value)
    return (
        f"STORAGE: the data directory {data_dir} is {what} ({problem.detail}); logins, "
        "spawns and saves fail until it is writable again (no restart needed)"
    )


def run_local_status(config: FleetConfig, data_dir: Path, as_json: bool = False) -> int:
    status = platform_status(data_dir, config.local.limits)
    code = EXIT_OK if status.running else EXIT_NOT_RUNNING
    if as_json:
        data = status.to_json()
        summary = certificate_status(config.tls, data_dir)
        data["certificate"] = (
            None
            if summary is None
            else {
                "issuer": summary.issuer,
                "names": list(summary.names),
                "not_before": summary.not_before.isoformat(),
                "not_after": summary.not_after.isoformat(),
            }
        )
        print(json.dumps(data, indent=2))
        return code
    for line in status_text(status):
        print(line)
    fault = storage_fault_line(data_dir)
    if fault is not None:
        print(fault)
    if is_data_dir(data_dir):  # the machine's facts; never create a data dir to show them
        runtime = Runtime(data_dir=data_dir.resolve())
        for line in local_status_lines(config, runtime):
            print(line)
    return code
