"""Pod Security admission in the Kubernetes API double (the built-in PodSecurity plugin).

A namespace labelled ``pod-security.kubernetes.io/enforce: baseline`` or
``restricted`` refuses pods that break the level, with the same kind of
403 message a cluster gives. An independent implementation of the
published Pod Security Standards, so labfleet's own checks are not graded
by themselves.
"""

from __future__ import annotations

from typing import Any

ENFORCE_LABEL = "pod-security.kubernetes.io/enforce"
#: Capabilities baseline allows to be added (restricted allows only NET_BIND_SERVICE).
BASELINE_CAPABILITIES = frozenset(
    {
        "AUDIT_WRITE",
        "CHOWN",
        "DAC_OVERRIDE",
        "FOWNER",
        "FSETID",
        "KILL",
        "MKNOD",
        "NET_BIND_SERVICE",
        "SETFCAP",
        "SETGID",
        "SETPCAP",
        "SETUID",
        "SYS_CHROOT",
    }
)
RESTRICTED_VOLUMES = frozenset(
    {
        "configMap",
        "csi",
        "downwardAPI",
        "emptyDir",
        "ephemeral",
        "persistentVolumeClaim",
        "projected",
        "secret",
    }
)


def _containers(spec: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        *(spec.get("initContainers") or []),
        *(spec.get("containers") or []),
        *(spec.get("ephemeralContainers") or []),
    ]


def _baseline(spec: dict[str, Any]) -> list[str]:
    problems = []
    for host in ("hostNetwork", "hostPID", "hostIPC"):
        if spec.get(host):
            problems.append(f"host namespaces ({host}=true)")
    for volume in spec.get("volumes") or []:
        if "hostPath" in volume:
            problems.append(f'hostPath volumes (volume "{volume.get("name")}")')
    pod_seccomp = ((spec.get("securityContext") or {}).get("seccompProfile") or {}).get("type")
    if pod_seccomp == "Unconfined":
        problems.append("seccompProfile (pod must not set seccompProfile.type to Unconfined)")
    for container in _containers(spec):
        name = container.get("name")
        context = container.get("securityContext") or {}
        if context.get("privileged"):
            problems.append(f'privileged (container "{name}" must not set privileged=true)')
        added = set((context.get("capabilities") or {}).get("add") or []) - BASELINE_CAPABILITIES
        if added:
            problems.append(f'non-default capabilities (container "{name}" adds {sorted(added)})')
        if any(p.get("hostPort") for p in container.get("ports") or []):
            problems.append(f'hostPort (container "{name}" uses hostPort)')
        if (context.get("seccompProfile") or {}).get("type") == "Unconfined":
            problems.append(f'seccompProfile (container "{name}" must not be Unconfined)')
    return problems


def _restricted(spec: dict[str, Any]) -> list[str]:
    problems = []
    pod_context = spec.get("securityContext") or {}
    for volume in spec.get("volumes") or []:
        kinds = set(volume) - {"name"}
        if not kinds <= RESTRICTED_VOLUMES:
            problems.append(
                f'restricted volume types (volume "{volume.get("name")}": {sorted(kinds)})'
            )
    pod_non_root = pod_context.get("runAsNonRoot") is True
    pod_seccomp = (pod_context.get("seccompProfile") or {}).get("type")
    if pod_context.get("runAsUser") == 0:
        problems.append("runAsUser=0 (pod must not run as root)")
    for container in _containers(spec):
        name = container.get("name")
        context = container.get("securityContext") or {}
        if context.get("allowPrivilegeEscalation") is not False:
            problems.append(
                f'allowPrivilegeEscalation != false (container "{name}" must set '
                "securityContext.allowPrivilegeEscalation=false)"
            )
        non_root = context.get("runAsNonRoot")
        if non_root is False or (non_root is None and not pod_non_root):
            problems.append(
                f'runAsNonRoot != true (pod or container "{name}" must set '
                "securityContext.runAsNonRoot=true)"
            )
        if context.get("runAsUser") == 0:
            problems.append(f'runAsUser=0 (container "{name}" must not set runAsUser=0)')
        capabilities = context.get("capabilities") or {}
        if "ALL" not in (capabilities.get("drop") or []):
            problems.append(
                f'unrestricted capabilities (container "{name}" must set '
                'securityContext.capabilities.drop=["ALL"])'
            )
        if set(capabilities.get("add") or []) - {"NET_BIND_SERVICE"}:
            problems.append(f'unrestricted capabilities (container "{name}" adds capabilities)')
        seccomp = (context.get("seccompProfile") or {}).get("type") or pod_seccomp
        if seccomp not in ("RuntimeDefault", "Localhost"):
            problems.append(
                f'seccompProfile (pod or container "{name}" must set '
                'securityContext.seccompProfile.type to "RuntimeDefault" or "Localhost")'
            )
    return problems


def violations(level: str, spec: dict[str, Any]) -> list[str]:
    """What ``spec`` breaks at ``level`` ("privileged", "baseline" or "restricted")."""
    if level == "baseline":
        return _baseline(spec)
    if level == "restricted":
        return _baseline(spec) + _restricted(spec)
    return []
