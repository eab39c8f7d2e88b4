"""Run the smoke test against a deployed fleet, step by step, and clean up (effects).

Each step is timed and reported as it ends (``report``). A failed step stops the ones that
depend on it; the clean-up step always runs, also after Ctrl-C (the caller turns SIGTERM
into KeyboardInterrupt), and lists anything it could not remove.
"""

from __future__ import annotations

import base64
import contextlib
import secrets as _random
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import TypeVar
from urllib.parse import quote

from labfleet.config.model import FleetConfig
from labfleet.kube.apply import Cluster, ObjectRef, connect
from labfleet.kube.apply.endpoint import find_endpoint
from labfleet.kube.hub_secret import generate_hub_secrets
from labfleet.kube.render import render_objects
from labfleet.kube.smoke.access import AccessPath, needs_port_forward, port_forward
from labfleet.kube.smoke.hubapi import HubApi, HubApiError, run_in_kernel
from labfleet.kube.smoke.plan import (
    HELLO_CODE,
    Outcome,
    SmokeNames,
    StepResult,
    boundary_probes,
    judge,
    parse_probe_output,
    probe_code,
    smoke_names,
)

T = TypeVar("T")
USERNAME_ANNOTATION = "hub.jupyter.org/username"
SUPERVISOR_KEY = "supervisor_token"
POLL = 1.0


@dataclass(frozen=True)
class SmokeOptions:
    url: str | None = None
    kubeconfig: str | None = None
    context: str | None = None
    spawn_timeout: float = 300.0
    kernel_timeout: float = 120.0
    #: start a second temporary user, whose pod the first must not reach
    neighbour: bool = True
    verify_tls: bool = True


class StepFailed(Exception):
    """A step failed (already reported); the steps after it are skipped."""


@dataclass
class SmokeRun:
    config: FleetConfig
    options: SmokeOptions
    report: Callable[[StepResult], None]
    suffix: str = field(default_factory=lambda: _random.token_hex(3))
    results: list[StepResult] = field(default_factory=list)
    _created: list[str] = field(default_factory=list)

    @property
    def names(self) -> SmokeNames:
        return smoke_names(self.config, self.suffix)

    # -- bookkeeping -------------------------------------------------------------
    def _record(self, name: str, outcome: Outcome, started: float, detail: str) -> None:
        result = StepResult(name, outcome, time.monotonic() - started, detail)
        self.results.append(result)
        self.report(result)

    def step(self, name: str, action: Callable[[], tuple[T, str]]) -> T:
        started = time.monotonic()
        try:
            value, detail = action()
        except (KeyboardInterrupt, StepFailed):
            raise
        except Exception as error:
            self._record(name, Outcome.FAIL, started, str(error) or type(error).__name__)
            raise StepFailed(name) from error
        self._record(name, Outcome.OK, started, detail)
        return value

    # -- the run -----------------------------------------------------------------
    def run(self) -> list[StepResult]:
        names = self.names
        with contextlib.ExitStack() as stack:
            cluster: Cluster | None = None
            api: HubApi | None = None
            try:
                cluster = stack.enter_context(
                    Cluster(connect(self.options.kubeconfig, self.options.context))
                )
                token = self.step(
                    f"read the hub's service token (secret/{names.hub_secret})",
                    lambda: (self._service_token(cluster), ""),
                )
                access = self.step("find the access path", lambda: self._access(stack, cluster))
                api = HubApi(access.url, token, verify_tls=self.options.verify_tls)
                self.step("reach the hub", lambda: self._reach(api))
                users = [names.user, *([names.neighbour] if self.options.neighbour else [])]
                self.step("create temporary users", lambda: self._create(api, users))
                user_token = self.step(
                    f"sign in as {names.user}", lambda: self._sign_in(api, names.user)
                )
                self.step("start their servers", lambda: self._spawn(api, users))
                self.step("run code in a kernel", lambda: self._hello(api, names.user, user_token))
                self._boundary(cluster, api, user_token)
            except StepFailed:
                pass
            finally:
                if api is not None:
                    self._clean_up(cluster, api)
        return self.results

    # -- steps -------------------------------------------------------------------
    def _service_token(self, cluster: Cluster) -> str:
        names = self.names
        secret = cluster.get(ObjectRef("v1", "Secret", names.namespace, names.hub_secret))
        if secret is None:
            raise RuntimeError(f"no secret/{names.hub_secret} in {names.namespace}: apply first")
        value = (secret.get("data") or {}).get(SUPERVISOR_KEY)
        if not value:
            raise RuntimeError(f"secret/{names.hub_secret} has no {SUPERVISOR_KEY}")
        return base64.b64decode(value).decode().strip()

    def _access(self, stack: contextlib.ExitStack, cluster: Cluster) -> tuple[AccessPath, str]:
        if self.options.url:
            url = self.options.url.rstrip("/") + "/"
            return AccessPath(url, "--url"), url
        objects = render_objects(self.config, generate_hub_secrets())
        endpoint = find_endpoint(cluster, objects)
        # Identity-Aware Proxy refuses a request without a Google identity: go around it
        if needs_port_forward(endpoint) or self.config.auth.kind == "iap":
            public = next(
                o["metadata"]["name"]
                for o in objects
                if o["kind"] == "Service" and o["metadata"]["name"].endswith("-proxy-public")
            )
            path = stack.enter_context(
                port_forward(
                    self.names.namespace, public, self.options.kubeconfig, self.options.context
                )
            )
            url = path.url + self.config.hub.base_url.lstrip("/")
            return AccessPath(url, path.how), f"{url} through {path.how}"
        assert endpoint is not None
        if endpoint.url is None:
            raise RuntimeError(endpoint.hint)
        url = endpoint.url.rstrip("/") + self.config.hub.base_url
        return AccessPath(url, endpoint.hint), f"{url} ({endpoint.hint})"

    def _reach(self, api: HubApi) -> tuple[None, str]:
        info = api.call("GET", "/")
        return None, f"JupyterHub {info.get('version', '?')}"

    def _create(self, api: HubApi, users: list[str]) -> tuple[None, str]:
        for user in users:
            if api.user(user) is not None:
                raise RuntimeError(f"user {user} already exists; not touching it")
            api.call("POST", f"/users/{quote(user)}")
            self._created.append(user)
        return None, ", ".join(users)

    def _sign_in(self, api: HubApi, user: str) -> tuple[str, str]:
        answer = api.call(
            "POST",
            f"/users/{quote(user)}/tokens",
            {
                "note": "labfleet smoke (deleted with its user)",
                "expires_in": 3600,
                "scopes": [f"access:servers!user={user}", f"read:servers!user={user}"],
            },
        )
        token = str(answer["token"])
        me = api.call("GET", "/user", token=token)
        if me.get("name") != user:
            raise RuntimeError(f"the token is for {me.get('name')!r}, not {user}")
        return token, "a token that expires in an hour, through the same URL as people"

    def _spawn(self, api: HubApi, users: list[str]) -> tuple[None, str]:
        for user in users:
            api.call("POST", f"/users/{quote(user)}/server", {})
        deadline = time.monotonic() + self.options.spawn_timeout
        waiting = set(users)
        while waiting:
            for user in sorted(waiting):
                model = api.user(user) or {}
                server = (model.get("servers") or {}).get("")
                if server is None:
                    raise RuntimeError(f"the server of {user} failed to start (see the hub log)")
                if server.get("ready"):
                    waiting.discard(user)
            if waiting and time.monotonic() > deadline:
                raise RuntimeError(
                    f"not ready after {self.options.spawn_timeout:.0f}s: " + ", ".join(waiting)
                )
            if waiting:
                time.sleep(POLL)
        return None, f"{len(users)} server(s) ready"

    def _hello(self, api: HubApi, user: str, token: str) -> tuple[None, str]:
        out = run_in_kernel(api, user, token, HELLO_CODE, self.options.kernel_timeout).split()
        if not out or out[0] != "42":
            raise RuntimeError(f"the kernel printed {' '.join(out)!r}, not 42")
        uid, host = (out[1], out[2]) if len(out) >= 3 else ("?", "?")
        return None, f"6 * 7 = 42 as uid {uid} on {host}"

    def _neighbour_ip(self, cluster: Cluster | None) -> str | None:
        names = self.names
        if not self.options.neighbour or cluster is None:
            return None
        namespace = names.user_namespace(self.config, names.neighbour)
        pod = cluster.get(ObjectRef("v1", "Pod", namespace, names.pod_name(names.neighbour)))
        ip = ((pod or {}).get("status") or {}).get("podIP")
        return str(ip) if ip else None

    def _boundary(self, cluster: Cluster | None, api: HubApi, token: str) -> None:
        names = self.names
        neighbour_ip = self._neighbour_ip(cluster)
        probes = boundary_probes(names, neighbour_ip)
        started = time.monotonic()
        try:
            output = run_in_kernel(
                api, names.user, token, probe_code(probes), self.options.kernel_timeout
            )
        except (KeyboardInterrupt, StepFailed):
            raise
        except Exception as error:
            self._record(
                "probe the boundary from inside the pod", Outcome.FAIL, started, str(error)
            )
            return
        answers = parse_probe_output(output)
        for probe in probes:
            outcome, detail = judge(probe, answers.get(probe.key, "no answer"))
            self._record(f"boundary: {probe.what}", outcome, started, detail)
            started = time.monotonic()
        if self.options.neighbour and neighbour_ip is None:
            self._record(
                "boundary: another user's server",
                Outcome.SKIP,
                started,
                "the neighbour's pod IP could not be read from the cluster",
            )

    # -- clean up ----------------------------------------------------------------
    def _clean_up(self, cluster: Cluster | None, api: HubApi) -> None:
        started = time.monotonic()
        removed: list[str] = []
        left: list[str] = []
        for user in self._created:
            for what, action in self._removals(cluster, api, user):
                try:
                    action()
                except Exception as error:
                    left.append(f"{what} ({error})")
                else:
                    removed.append(what)
        if not self._created:
            return
        if left:
            self._record(
                "remove what the smoke test created",
                Outcome.FAIL,
                started,
                "left behind, remove by hand: " + "; ".join(left),
            )
        else:
            self._record(
                "remove what the smoke test created", Outcome.OK, started, ", ".join(removed)
            )

    def _removals(
        self, cluster: Cluster | None, api: HubApi, user: str
    ) -> Iterator[tuple[str, Callable[[], None]]]:
        yield f"server of {user}", lambda: self._stop(api, user)
        yield f"user {user}", lambda: self._delete_user(api, user)
        if cluster is None:
            return
        namespace = self.names.user_namespace(self.config, user)
        if namespace != self.names.namespace:
            yield f"namespace/{namespace}", lambda: self._delete_namespace(cluster, namespace)
        else:
            yield f"volumes of {user}", lambda: self._delete_claims(cluster, namespace, user)

    def _stop(self, api: HubApi, user: str) -> None:
        if api.user(user) is None:
            return
        with contextlib.suppress(HubApiError):  # not running: nothing to stop
            api.call("DELETE", f"/users/{quote(user)}/server")
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            model = api.user(user) or {}
            if not model.get("servers"):
                return
            time.sleep(POLL)
        raise RuntimeError("still running after 120s")

    def _delete_user(self, api: HubApi, user: str) -> None:
        if api.user(user) is not None:
            api.call("DELETE", f"/users/{quote(user)}")

    def _delete_claims(self, cluster: Cluster, namespace: str, user: str) -> None:
        claims = cluster.list("v1", "PersistentVolumeClaim", namespace=namespace)
        for claim in claims:
            annotations = claim["metadata"].get("annotations") or {}
            if annotations.get(USERNAME_ANNOTATION) == user:
                ref = ObjectRef("v1", "PersistentVolumeClaim", namespace, claim["metadata"]["name"])
                cluster.delete(ref)

    def _delete_namespace(self, cluster: Cluster, namespace: str) -> None:
        cluster.delete(ObjectRef("v1", "Namespace", "", namespace))


def results_failed(results: list[StepResult]) -> bool:
    return any(r.outcome is Outcome.FAIL for r in results)
