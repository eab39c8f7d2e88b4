"""Open a lightkube client for the apply engine (the one place that reads kubeconfig)."""

from __future__ import annotations

from pathlib import Path

from lightkube import Client
from lightkube.config.kubeconfig import KubeConfig

from labfleet.kube.apply.refs import FIELD_MANAGER


def connect(kubeconfig: str | Path | None = None, context: str | None = None) -> Client:
    """A client for ``kubeconfig`` (default: in-cluster, $KUBECONFIG, ~/.kube/config)."""
    if kubeconfig is None and context is None:
        return Client(field_manager=FIELD_MANAGER)
    config = KubeConfig.from_file(str(kubeconfig)) if kubeconfig else KubeConfig.from_env()
    return Client(config=config.get(context_name=context), field_manager=FIELD_MANAGER)
