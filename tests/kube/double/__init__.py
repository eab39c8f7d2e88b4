"""A strict in-process Kubernetes API *double* for tests (no real cluster).

Real HTTP on 127.0.0.1, the REST and watch protocol, resourceVersion and
optimistic concurrency, 404/409/422 answers with schema validation from the
real OpenAPI schemas (kubernetes-validate, strict), server-side apply with
managedFields ownership and conflicts, ServiceAccount and Pod Security
admission, and fake controllers that give workloads pods and make pods
Running (or stuck, with the kubelet's reasons). See ``harness.KubeDouble``.
"""

from .harness import KubeDouble, running_double

__all__ = ["KubeDouble", "running_double"]
