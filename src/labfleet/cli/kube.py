"""``labfleet render | plan | apply | status | destroy``: the same config on Kubernetes.

``render`` is pure (no cluster): every object as YAML on stdout or one file
per object in a directory. The other commands hand the rendered objects to
the apply engine in :mod:`labfleet.kube.apply`.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from labfleet.cli.common import EXIT_BAD_INPUT, EXIT_FAILURE, EXIT_OK, load_or_report
from labfleet.kube.hub_secret import generate_hub_secrets
from labfleet.kube.render import file_name, render_objects, to_yaml

#: Files ``render -o`` writes (and replaces on the next render into the same dir).
RENDERED_GLOB = "[0-9][0-9]-*.yaml"


def register(subparsers: Any) -> None:
    render = subparsers.add_parser(
        "render", help="print every Kubernetes object as YAML (no cluster needed)"
    )
    _config_option(render)
    render.add_argument(
        "-o",
        "--output-dir",
        metavar="DIR",
        type=Path,
        help="write one YAML file per object into DIR instead of stdout",
    )
    render.set_defaults(func=run_render)

    for name, help_text in _CLUSTER_COMMANDS.items():
        parser = subparsers.add_parser(name, help=help_text)
        _config_option(parser)
        parser.add_argument("--kubeconfig", metavar="FILE", help="default: in-cluster or ~/.kube")
        parser.add_argument("--context", metavar="NAME", help="kubeconfig context")
        if name == "destroy":
            parser.add_argument(
                "--delete-user-data",
                action="store_true",
                help="also delete users' volumes and the namespace holding them",
            )
        parser.set_defaults(func=run_cluster_command)


_CLUSTER_COMMANDS = {
    "plan": "show what apply would change in the cluster",
    "apply": "server-side apply, prune what is no longer rendered, wait for rollout",
    "status": "hub, proxy and users' pods in the cluster",
    "destroy": "remove everything labfleet owns (users' volumes kept by default)",
}


def run_cluster_command(args: argparse.Namespace) -> int:
    print(
        f"error: `labfleet {args.command}` needs the apply engine (labfleet.kube.apply), "
        "which is not available in this build; use `labfleet render -o DIR` and "
        "`kubectl apply --server-side -f DIR` meanwhile",
        file=sys.stderr,
    )
    return EXIT_FAILURE


def _config_option(parser: argparse.ArgumentParser) -> None:
    # Required here: deploying the embedded defaults by accident helps nobody.
    parser.add_argument("-c", "--config", metavar="FILE", required=True, help="labfleet.yaml")


def run_render(args: argparse.Namespace) -> int:
    config = load_or_report(args.config)
    if config is None:
        return EXIT_BAD_INPUT
    objects = render_objects(config, generate_hub_secrets())
    out: Path | None = args.output_dir
    if out is None:
        sys.stdout.write(to_yaml(objects))
        return EXIT_OK
    try:
        out.mkdir(parents=True, exist_ok=True)
        for stale in out.glob(RENDERED_GLOB):
            stale.unlink()
        for index, obj in enumerate(objects):
            (out / file_name(index, obj)).write_text(to_yaml([obj]), encoding="utf-8")
    except OSError as exc:
        print(f"error: cannot write to {out}: {exc}", file=sys.stderr)
        return EXIT_FAILURE
    print(
        f"wrote {len(objects)} objects to {out}/ (the hub Secret holds newly generated "
        "values; `labfleet apply` keeps the ones already in the cluster)",
        file=sys.stderr,
    )
    return EXIT_OK
