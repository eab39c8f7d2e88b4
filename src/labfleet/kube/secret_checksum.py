"""A checksum of the hub Secret's data for pod template annotations.

Kubernetes restarts a Deployment's pods only when its pod template changes; a changed
Secret alone (``labfleet rotate`` on Kubernetes, docs/operating.md) leaves pods running with
the old values in their environment. Putting this checksum in the template annotations of
every Deployment that reads the Secret (hub and proxy) turns a secret change into a rollout
at the next apply. Pure: values in, annotation out; the apply engine
(:mod:`labfleet.kube.apply.secret_rollout`) reads the values and decides where it goes.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any

ANNOTATION = "labfleet.io/secrets-checksum"


def secrets_checksum(data: Mapping[str, str]) -> str:
    """SHA-256 over the Secret's sorted keys and values (base64 or plain: the same input,
    the same sum); the values themselves cannot be recovered from it."""
    canonical = json.dumps(sorted(data.items()), separators=(",", ":")).encode()
    return hashlib.sha256(canonical).hexdigest()


def annotate_pod_template(deployment: Mapping[str, Any], checksum: str) -> dict[str, Any]:
    """A copy of ``deployment`` whose pod template carries the checksum annotation."""
    out: dict[str, Any] = json.loads(json.dumps(deployment))
    template = out.setdefault("spec", {}).setdefault("template", {})
    template.setdefault("metadata", {}).setdefault("annotations", {})[ANNOTATION] = checksum
    return out
