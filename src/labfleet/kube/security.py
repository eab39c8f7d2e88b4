"""Pod Security "restricted" contexts, used by every pod we render or spawn.

restricted = non-root, no privilege escalation, all capabilities dropped,
seccomp RuntimeDefault. One place defines them, so no builder can forget one.
"""

from __future__ import annotations

from typing import Any

SECCOMP_RUNTIME_DEFAULT = {"type": "RuntimeDefault"}
#: uid/gid for our own images (hub, proxy) and for pause/prepuller pods.
SERVICE_UID = 1000
NOBODY_UID = 65534


def pod_security_context(uid: int, gid: int, fs_gid: int | None = None) -> dict[str, Any]:
    if uid == 0:
        raise ValueError("pods never run as root (Pod Security 'restricted')")
    context: dict[str, Any] = {
        "runAsNonRoot": True,
        "runAsUser": uid,
        "runAsGroup": gid,
        "seccompProfile": dict(SECCOMP_RUNTIME_DEFAULT),
    }
    if fs_gid is not None:
        context["fsGroup"] = fs_gid
    return context


def container_security_context(*, read_only_root: bool = True) -> dict[str, Any]:
    return {
        "allowPrivilegeEscalation": False,
        "capabilities": {"drop": ["ALL"]},
        "readOnlyRootFilesystem": read_only_root,
        "runAsNonRoot": True,
        "seccompProfile": dict(SECCOMP_RUNTIME_DEFAULT),
    }
