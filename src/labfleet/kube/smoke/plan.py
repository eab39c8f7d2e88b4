"""What ``labfleet smoke`` checks, as data (pure: no network, no cluster).

The smoke test is the real-cluster test labfleet's own suite cannot run: after ``apply`` it
signs in as temporary users through the same access path people use, starts their servers,
runs code in a kernel, and probes the tenant boundary from inside a user's pod. This module
decides the names, the code the kernel runs, and how each probe's answer is judged; the
effects live in :mod:`labfleet.kube.smoke.run`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from enum import Enum

from labfleet.config.model import FleetConfig
from labfleet.kube.meta import HUB_PORT, PROXY_API_PORT, names_of
from labfleet.kube.user_namespace import user_namespace_name
from labfleet.naming import server_slug

#: Temporary users are named ``smoke-<random>`` (and ``...-b`` for the neighbour).
USER_PREFIX = "smoke-"
#: The cloud metadata server (GCE, AWS, Azure all answer on it).
METADATA_ADDRESS = "169.254.169.254"
USER_PORT = 8888
PROBE_TIMEOUT = 3.0
#: What the kernel runs first: proves code runs, and that it runs in the pod, not the hub.
HELLO_CODE = "import os, socket; print(6 * 7, os.getuid(), socket.gethostname())"


class Outcome(Enum):
    OK = "ok"
    FAIL = "FAIL"
    SKIP = "skip"


@dataclass(frozen=True)
class StepResult:
    """One line of the report: what was checked, how it went, how long it took."""

    name: str
    outcome: Outcome
    seconds: float
    detail: str = ""


@dataclass(frozen=True)
class SmokeNames:
    """Every name the smoke test uses or creates, derived from the config."""

    namespace: str
    hub_secret: str
    hub_api_in_cluster: str
    proxy_api_in_cluster: str
    user: str
    neighbour: str

    def user_namespace(self, config: FleetConfig, username: str) -> str:
        if config.kubernetes.users.namespaces == "per-user":
            return user_namespace_name(config, username)
        return self.namespace

    @staticmethod
    def pod_name(username: str) -> str:
        return f"jupyter-{server_slug(username, '')}"


def smoke_names(config: FleetConfig, suffix: str) -> SmokeNames:
    """``suffix``: a few random characters chosen by the caller (the effect)."""
    names = names_of(config)
    user = f"{USER_PREFIX}{suffix}"
    return SmokeNames(
        namespace=names.namespace,
        hub_secret=names.hub_secret,
        hub_api_in_cluster=names.service_url(names.hub, HUB_PORT) + config.hub.base_url,
        proxy_api_in_cluster=names.service_url(names.proxy_api, PROXY_API_PORT),
        user=user,
        neighbour=f"{user}-b",
    )


@dataclass(frozen=True)
class Probe:
    """One thing a user's pod must not reach, and how the kernel tries to."""

    key: str
    what: str
    #: "tcp" (a bare connection) or "http" (a GET without credentials)
    method: str
    target: str


def boundary_probes(names: SmokeNames, neighbour_ip: str | None) -> list[Probe]:
    probes = [
        Probe("metadata", "the cloud metadata server", "tcp", f"{METADATA_ADDRESS}:80"),
        Probe(
            "proxy-api",
            "the proxy's REST API",
            "http",
            names.proxy_api_in_cluster + "/api/routes",
        ),
        Probe(
            "hub-api",
            "the hub API without a token",
            "http",
            names.hub_api_in_cluster + "hub/api/users",
        ),
    ]
    if neighbour_ip is not None:
        probes.insert(
            1,
            Probe("neighbour", "another user's server", "tcp", f"{neighbour_ip}:{USER_PORT}"),
        )
    return probes


_PROBE_TEMPLATE = """\
import json, socket, urllib.error, urllib.request
def _tcp(target):
    host, port = target.rsplit(":", 1)
    try:
        socket.create_connection((host, int(port)), timeout={timeout}).close()
    except OSError as error:
        return "unreachable: " + type(error).__name__
    return "connected"
def _http(url):
    try:
        return "HTTP %d" % urllib.request.urlopen(url, timeout={timeout}).status
    except urllib.error.HTTPError as error:
        return "HTTP %d" % error.code
    except Exception as error:
        return "unreachable: " + type(error).__name__
_probes = json.loads({probes!r})
print(json.dumps({{p["key"]: (_tcp if p["method"] == "tcp" else _http)(p["target"])
                  for p in _probes}}))
"""


def probe_code(probes: list[Probe]) -> str:
    """Python for the user's kernel: try each probe, print one JSON object of answers."""
    data = json.dumps([p.__dict__ for p in probes])
    return _PROBE_TEMPLATE.format(timeout=PROBE_TIMEOUT, probes=data)


def judge(probe: Probe, answer: str) -> tuple[Outcome, str]:
    """Unreachable passes; so does the hub refusing a request without a token."""
    if answer.startswith("unreachable"):
        return Outcome.OK, f"{probe.what} is unreachable from a user's pod ({answer})"
    if probe.key == "hub-api" and answer in ("HTTP 401", "HTTP 403"):
        return Outcome.OK, f"{probe.what} is refused ({answer})"
    return Outcome.FAIL, f"{probe.what} ({probe.target}) answers a user's pod: {answer}"


def parse_probe_output(output: str) -> dict[str, str]:
    """The JSON line the probe code printed (the last one, whatever came before)."""
    for line in reversed(output.strip().splitlines()):
        try:
            found = json.loads(line)
        except ValueError:
            continue
        if isinstance(found, dict):
            return {str(k): str(v) for k, v in found.items()}
    return {}


def report_line(result: StepResult) -> str:
    detail = f"  {result.detail}" if result.detail else ""
    return f"  {result.outcome.value:<4} {result.seconds:6.1f}s  {result.name}{detail}"


def summary(results: list[StepResult]) -> str:
    failed = [r for r in results if r.outcome is Outcome.FAIL]
    total = sum(r.seconds for r in results)
    if failed:
        names = ", ".join(r.name for r in failed)
        return f"smoke test FAILED ({len(failed)} of {len(results)} steps, {total:.1f}s): {names}"
    return f"smoke test passed: {len(results)} steps in {total:.1f}s"
