"""``labfleet logs`` on Kubernetes: read pod logs through the API, as ``kubectl logs`` does.

:func:`log_source` (pure) turns ``hub``, ``proxy`` or ``USER[/SERVER]`` into
where the answer lives: the hub and proxy pods are found by their labels
(the Deployment's current pod), a user's server by its pod name
(``jupyter-<server_slug>``, in the shared or the user's own namespace).
:func:`read_logs` (effects) asks the API server through the same lightkube
client the apply engine uses, so one kubeconfig serves both.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from labfleet.config.model import FleetConfig
from labfleet.kube.meta import COMPONENT_HUB, COMPONENT_PROXY, names_of, selector
from labfleet.kube.spawner_settings import POD_NAME_TEMPLATE
from labfleet.naming import server_slug, user_slug


class LogsError(RuntimeError):
    """No pod answers the question, or the API refused; the message says what to do."""


@dataclass(frozen=True)
class LogSource:
    """Where one ``labfleet logs`` question is answered."""

    what: str  # as the user wrote it, for messages
    namespace: str
    container: str | None
    pod: str | None = None  # a user's server: a known name
    labels: tuple[tuple[str, str], ...] = ()  # hub/proxy: the Deployment's pods


def user_namespace(config: FleetConfig, username: str) -> str:
    kube = config.kubernetes
    if kube.users.namespaces == "shared":
        return kube.namespace
    return kube.users.per_user.template.format(
        namespace=kube.namespace, user_slug=user_slug(username)
    )


def log_source(config: FleetConfig, what: str) -> LogSource:
    names = names_of(config)
    if what in ("hub", "proxy"):
        component = COMPONENT_HUB if what == "hub" else COMPONENT_PROXY
        wanted = tuple(sorted(selector(config, component).items()))
        return LogSource(what, names.namespace, what, labels=wanted)
    user, _, server = what.partition("/")
    pod = POD_NAME_TEMPLATE.replace("{server_slug}", server_slug(user, server))
    # KubeSpawner's pod has one container, "notebook"; naming it keeps sidecars out
    return LogSource(what, user_namespace(config, user), "notebook", pod=pod)


def _started(pod: Any) -> str:
    meta = pod.metadata
    stamp = meta.creationTimestamp if meta is not None else None
    return str(stamp or "")


def _pick_pod(client: Any, source: LogSource) -> str:
    from lightkube.resources.core_v1 import Pod

    pods = list(client.list(Pod, namespace=source.namespace, labels=dict(source.labels)))
    if not pods:
        raise LogsError(
            f"no {source.what} pod in namespace {source.namespace}: is the fleet applied? "
            "(labfleet status --cluster)"
        )
    running = [p for p in pods if p.status is not None and p.status.phase == "Running"]
    newest = max(running or pods, key=_started)
    return str(newest.metadata.name)


def read_logs(client: Any, source: LogSource, *, lines: int, follow: bool) -> Iterator[str]:
    """Lines of the pod's log (without newlines); with ``follow`` until the pod ends."""
    from lightkube import ApiError

    pod = source.pod or _pick_pod(client, source)
    try:
        stream = client.log(
            pod,
            namespace=source.namespace,
            container=source.container,
            tail_lines=lines,
            follow=follow,
            newlines=False,
        )
        yield from stream
    except ApiError as error:
        code = error.status.code
        if code == 404 and source.pod is not None:
            user = source.what.partition("/")[0]
            raise LogsError(
                f"no server pod {pod} in namespace {source.namespace}: {user!r} has no running "
                "server (a stopped server's pod and its log are gone)"
            ) from None
        raise LogsError(f"cannot read the log of pod {pod}: {error.status.message}") from None
