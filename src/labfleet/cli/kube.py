"""``labfleet render | plan | apply | status | destroy``: the same config on Kubernetes.

``render`` is pure (no cluster): every object as YAML on stdout or one file
per object in a directory. The other commands hand the rendered objects to
the apply engine in :mod:`labfleet.kube.apply`.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import sys
from pathlib import Path
from typing import Any

from labfleet.cli.common import (
    EXIT_BAD_INPUT,
    EXIT_FAILURE,
    EXIT_OK,
    add_data_dir_option,
    load_or_report,
)
from labfleet.cli.localstatus import add_local_status_options, run_local_status, wants_local_status
from labfleet.config.model import FleetConfig
from labfleet.kube.access import first_admin_hint, how_to_reach
from labfleet.kube.checks import kube_warnings
from labfleet.kube.hub_secret import generate_hub_secrets
from labfleet.kube.render import file_name, render_objects, to_yaml
from labfleet.up.record import read_record

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
        _config_option(parser, required=name != "status")
        parser.add_argument("--kubeconfig", metavar="FILE", help="default: in-cluster or ~/.kube")
        parser.add_argument("--context", metavar="NAME", help="kubeconfig context")
        if name == "apply":
            parser.add_argument(
                "--no-prune",
                dest="prune",
                action="store_false",
                help="keep objects that are no longer rendered",
            )
            parser.add_argument(
                "--no-wait", dest="wait", action="store_false", help="do not wait for rollout"
            )
            parser.add_argument(
                "--timeout",
                type=float,
                default=300.0,
                metavar="SECONDS",
                help="how long to wait for the rollout (default 300)",
            )
            parser.add_argument(
                "--force-conflicts",
                action="store_true",
                help="take over fields another field manager changed",
            )
        if name == "status":
            add_data_dir_option(parser)
            add_local_status_options(parser)
            where = parser.add_mutually_exclusive_group()
            where.add_argument(
                "--local",
                action="store_true",
                help="status of the embedded platform in --data-dir (default when it exists)",
            )
            where.add_argument(
                "--cluster",
                action="store_true",
                help="status of the deployment in the cluster (default otherwise)",
            )
        if name == "destroy":
            parser.add_argument(
                "--delete-user-data",
                action="store_true",
                help="also delete users' volumes and the namespace holding them",
            )
            parser.add_argument("--yes", action="store_true", help="do not ask; just destroy")
        parser.set_defaults(func=run_cluster_command)


_CLUSTER_COMMANDS = {
    "plan": "show what apply would change in the cluster",
    "apply": "server-side apply, prune what is no longer rendered, wait for rollout",
    "status": "hub, proxy and users' pods in the cluster",
    "destroy": "remove everything labfleet owns (users' volumes kept by default)",
}


def run_cluster_command(args: argparse.Namespace) -> int:
    """Render, connect, hand over to the apply engine; print its report."""
    local_status = args.command == "status" and _wants_local_status(args)
    config = load_or_report(_status_config(args) if local_status else args.config)
    if config is None:
        return EXIT_BAD_INPUT
    if args.command == "destroy" and not args.yes:
        what = "everything labfleet owns" + (
            ", users' volumes included" if args.delete_user_data else " (users' volumes kept)"
        )
        print(
            f"error: destroy removes {what} in namespace {config.kubernetes.namespace}; "
            "run again with --yes to confirm",
            file=sys.stderr,
        )
        return EXIT_BAD_INPUT
    if args.command in ("plan", "apply"):
        _warn(config)
    if local_status:
        return run_local_status(config, args.data_dir, args.json)
    return _run_engine(args, config)


def _status_config(args: argparse.Namespace) -> str | None:
    """``-c`` if given, else the labfleet.yaml the running platform was started with.

    So ``labfleet status`` shows the served certificate and the profiles' facts of the
    platform that runs, not of the embedded defaults.
    """
    if args.config:
        return str(args.config)
    record = read_record(Path(args.data_dir))
    if record is not None and record.config and Path(record.config).is_file():
        return record.config
    return None


def _wants_local_status(args: argparse.Namespace) -> bool:
    return wants_local_status(args)  # cli.localstatus: explicit or running data dirs are local


def _warn(config: FleetConfig) -> None:
    for warning in kube_warnings(config):
        print(f"warning: {warning}", file=sys.stderr)


def _run_engine(args: argparse.Namespace, config: FleetConfig) -> int:
    # Imported here: `render` must not need the engine's client stack.
    from lightkube.core.exceptions import ConfigError as KubeConfigError

    from labfleet.kube import apply as engine

    objects = render_objects(config, generate_hub_secrets())
    try:
        target = engine.target_of(objects)
        cluster = engine.Cluster(engine.connect(args.kubeconfig, args.context))
        if args.command == "plan":
            print(engine.plan_text(engine.plan(cluster, objects)))
            return EXIT_OK
        if args.command == "status":
            fleet = engine.status(cluster, target)
            print(engine.status_text(fleet))
            return EXIT_OK if fleet.healthy else EXIT_FAILURE
        if args.command == "destroy":
            destroyed = engine.destroy(
                cluster, target, delete_user_data=args.delete_user_data, on_event=_print_event
            )
            print(engine.destroy_summary(destroyed))
            return EXIT_OK
        result = engine.apply(
            cluster,
            objects,
            prune=args.prune,
            wait=args.wait,
            timeout=args.timeout,
            force_conflicts=args.force_conflicts,
            on_event=_print_event,
        )
        print(engine.apply_summary(result))
        if result.endpoint is None:
            print(how_to_reach(config))
            hint = first_admin_hint(config)
            if hint:
                print(hint)
        return EXIT_FAILURE if result.rollout is not None and not result.rollout.ready else EXIT_OK
    except engine.ManifestError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except engine.ClusterError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_FAILURE
    except KubeConfigError as exc:
        print(f"error: no usable kubeconfig: {exc}", file=sys.stderr)
        return EXIT_FAILURE
    except _transport_errors() as exc:
        print(f"error: cannot reach the Kubernetes API: {exc}", file=sys.stderr)
        return EXIT_FAILURE


def _transport_errors() -> tuple[type[Exception], ...]:
    """HTTP client errors (lightkube 1.x ships its own ``httpx2``; older ones use httpx)."""
    errors: list[type[Exception]] = []
    for module in ("httpx2", "httpx"):
        with contextlib.suppress(ImportError):
            errors.append(importlib.import_module(module).HTTPError)
    return tuple(errors)


def _print_event(event: Any) -> None:
    from labfleet.kube.apply import event_line

    line = event_line(event)
    if line is not None:
        print(line, flush=True)


def _config_option(parser: argparse.ArgumentParser, required: bool = True) -> None:
    # Required for cluster changes: deploying the embedded defaults by accident helps nobody.
    parser.add_argument("-c", "--config", metavar="FILE", required=required, help="labfleet.yaml")


def run_render(args: argparse.Namespace) -> int:
    config = load_or_report(args.config)
    if config is None:
        return EXIT_BAD_INPUT
    _warn(config)
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
