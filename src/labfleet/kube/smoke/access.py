"""How ``labfleet smoke`` reaches the hub: the way people do (effects).

An Ingress host or a load balancer's address when the fleet has one (what ``apply``
prints), else ``kubectl port-forward`` to the public proxy Service, started here on a free
local port and stopped when the smoke test ends. ``--url`` overrides all of it.
"""

from __future__ import annotations

import contextlib
import re
import shutil
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass

from labfleet.kube.apply.results import Endpoint

_FORWARDING = re.compile(r"Forwarding from 127\.0\.0\.1:(\d+)")
PORT_FORWARD_WAIT = 30.0


@dataclass(frozen=True)
class AccessPath:
    url: str
    how: str


def needs_port_forward(endpoint: Endpoint | None) -> bool:
    return endpoint is None or "port-forward" in endpoint.hint


@contextlib.contextmanager
def port_forward(
    namespace: str, service: str, kubeconfig: str | None, context: str | None
) -> Iterator[AccessPath]:
    """``kubectl port-forward service/SERVICE :80``, stopped (by pid) on exit."""
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        raise RuntimeError(
            "the fleet is reached through kubectl port-forward, and kubectl is not on PATH "
            "(or pass --url)"
        )
    argv = [kubectl, "port-forward", "-n", namespace, f"service/{service}", ":80"]
    if kubeconfig:
        argv[1:1] = ["--kubeconfig", kubeconfig]
    if context:
        argv[1:1] = ["--context", context]
    process = subprocess.Popen(
        argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1
    )
    try:
        deadline = time.monotonic() + PORT_FORWARD_WAIT
        assert process.stdout is not None
        seen: list[str] = []
        while time.monotonic() < deadline:
            line = process.stdout.readline()
            if not line:
                break
            seen.append(line.strip())
            match = _FORWARDING.search(line)
            if match:
                # kubectl prints a line per connection: keep reading so it never blocks
                threading.Thread(target=_drain, args=(process,), daemon=True).start()
                url = f"http://127.0.0.1:{match.group(1)}/"
                yield AccessPath(url, f"kubectl port-forward service/{service} (pid {process.pid})")
                return
        raise RuntimeError("kubectl port-forward did not start: " + " | ".join(seen[-3:]))
    finally:
        if process.poll() is None:
            process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _drain(process: subprocess.Popen[str]) -> None:
    if process.stdout is not None:
        for _ in process.stdout:
            pass
