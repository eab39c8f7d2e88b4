"""``labfleet images build``: build and tag the hub and default user images.

A thin wrapper over :mod:`labfleet.kube.image_build`. With podman on hosts without
systemd or a pure cgroup v2 layout, point ``CONTAINERS_CONF`` at a containers.conf
with ``runtime = "runc"`` and ``cgroup_manager = "cgroupfs"`` (docs/kubernetes.md).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path
from typing import Any

from labfleet.cli.common import EXIT_BAD_INPUT, EXIT_FAILURE, EXIT_OK
from labfleet.kube.image_build import (
    DEFAULT_PREFIX,
    ENGINES,
    BuildRequest,
    ImageBuildError,
    build_images,
    find_source_tree,
)


def register(subparsers: Any) -> None:
    images = subparsers.add_parser("images", help="build the hub and user container images")
    sub = images.add_subparsers(dest="images_command", metavar="ACTION", required=True)
    build = sub.add_parser(
        "build", help="build PREFIX/labfleet-hub:VERSION and PREFIX/labfleet-user:VERSION"
    )
    build.add_argument(
        "--base",
        required=True,
        metavar="IMAGE",
        help="Debian bookworm base image, e.g. docker.io/library/debian:bookworm-slim",
    )
    build.add_argument(
        "--prefix", default=DEFAULT_PREFIX, help=f"image name prefix (default {DEFAULT_PREFIX})"
    )
    build.add_argument("--engine", choices=ENGINES, default="podman")
    build.add_argument(
        "--ca-bundle",
        type=Path,
        metavar="FILE",
        help="extra CA bundle pip trusts during the build (not kept in the images)",
    )
    build.add_argument(
        "--source", type=Path, metavar="DIR", help="labfleet checkout (default: found)"
    )
    build.set_defaults(func=run_build)


def run_build(args: argparse.Namespace) -> int:
    try:
        source = args.source.resolve() if args.source else find_source_tree()
    except ImageBuildError as exc:
        print(f"labfleet images build: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    request = BuildRequest(
        base=args.base, prefix=args.prefix, engine=args.engine, ca_bundle=args.ca_bundle
    )
    with tempfile.TemporaryDirectory(prefix="labfleet-images-") as workdir:
        try:
            tags = build_images(request, source, Path(workdir))
        except ImageBuildError as exc:
            print(f"labfleet images build: {exc}", file=sys.stderr)
            return EXIT_FAILURE
    for tag in tags.values():
        print(tag)
    return EXIT_OK
