"""``labfleet smoke``: after ``apply``, prove the fleet works and its boundary holds.

Thin: parse, run :class:`labfleet.kube.smoke.SmokeRun`, print each step as it ends.
Ctrl-C or SIGTERM stops the run, and what it created is still removed.
"""

from __future__ import annotations

import argparse
import signal
import sys
from types import FrameType
from typing import Any

from labfleet.cli.common import EXIT_BAD_INPUT, EXIT_FAILURE, EXIT_OK, load_or_report
from labfleet.kube.smoke import SmokeOptions, SmokeRun, StepResult, report_line, results_failed
from labfleet.kube.smoke import summary as smoke_summary

EXIT_INTERRUPTED = 130


def register(subparsers: Any) -> None:
    smoke = subparsers.add_parser(
        "smoke",
        help="after apply: sign in as a temporary user, run code, probe the boundary, clean up",
    )
    smoke.add_argument("-c", "--config", metavar="FILE", required=True, help="labfleet.yaml")
    smoke.add_argument("--kubeconfig", metavar="FILE", help="default: in-cluster or ~/.kube")
    smoke.add_argument("--context", metavar="NAME", help="kubeconfig context")
    smoke.add_argument(
        "--url",
        metavar="URL",
        help="the hub's public URL (default: the Ingress host or load balancer address "
        "apply reports, else a kubectl port-forward started for the run)",
    )
    smoke.add_argument(
        "--spawn-timeout",
        type=float,
        default=300.0,
        metavar="SECONDS",
        help="how long a server may take to start (default 300; image pulls count)",
    )
    smoke.add_argument(
        "--no-neighbour",
        dest="neighbour",
        action="store_false",
        help="start one temporary user, not two (skips the other-user's-pod probe)",
    )
    smoke.add_argument(
        "--insecure",
        action="store_true",
        help="accept a certificate that does not verify (a staging issuer)",
    )
    smoke.set_defaults(func=run_smoke)


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def _print(result: StepResult) -> None:
    print(report_line(result), flush=True)


def run_smoke(args: argparse.Namespace) -> int:
    config = load_or_report(args.config)
    if config is None:
        return EXIT_BAD_INPUT
    options = SmokeOptions(
        url=args.url,
        kubeconfig=args.kubeconfig,
        context=args.context,
        spawn_timeout=args.spawn_timeout,
        neighbour=args.neighbour,
        verify_tls=not args.insecure,
    )
    run = SmokeRun(config, options, _print)
    print(
        f"labfleet smoke: fleet {config.name} in namespace {config.kubernetes.namespace}, "
        f"temporary users {run.names.user}"
        + (f" and {run.names.neighbour}" if options.neighbour else ""),
        flush=True,
    )
    previous = signal.signal(signal.SIGTERM, _interrupt)
    interrupted = False
    try:
        run.run()
    except KeyboardInterrupt:
        interrupted = True
    finally:
        signal.signal(signal.SIGTERM, previous)
    if interrupted:
        print("interrupted: what the smoke test created was removed (see above)", file=sys.stderr)
        return EXIT_INTERRUPTED
    print(smoke_summary(run.results), flush=True)
    return EXIT_FAILURE if results_failed(run.results) else EXIT_OK
