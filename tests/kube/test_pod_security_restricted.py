"""Every pod we render or spawn passes Pod Security "restricted".

The checker below implements the published Pod Security Standards
(kubernetes.io/docs/concepts/security/pod-security-standards/): every
"baseline" control plus every "restricted" control, over containers,
initContainers and ephemeralContainers. It runs on the pod templates of our
Deployments/DaemonSets and on the pods KubeSpawner really builds from our
settings; the negative cases prove each rule can fail.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import pytest

from tests.kube.test_render_helpers import (
    example_ids,
    kubeconfig,  # noqa: F401 - fixture
    kubespawner_pod,
    load_example,
    pod_specs,
    render_example,
)

BASELINE_CAPABILITIES = {
    "AUDIT_WRITE", "CHOWN", "DAC_OVERRIDE", "FOWNER", "FSETID", "KILL", "MKNOD",
    "NET_BIND_SERVICE", "SETFCAP", "SETGID", "SETPCAP", "SETUID", "SYS_CHROOT",
}  # fmt: skip
RESTRICTED_VOLUME_TYPES = {
    "configMap", "csi", "downwardAPI", "emptyDir", "ephemeral", "persistentVolumeClaim",
    "projected", "secret",
}  # fmt: skip
SAFE_SYSCTLS = {
    "kernel.shm_rmid_forced", "net.ipv4.ip_local_port_range", "net.ipv4.ip_unprivileged_port_start",
    "net.ipv4.tcp_syncookies", "net.ipv4.ping_group_range", "net.ipv4.ip_local_reserved_ports",
    "net.ipv4.tcp_keepalive_time", "net.ipv4.tcp_fin_timeout", "net.ipv4.tcp_keepalive_intvl",
    "net.ipv4.tcp_keepalive_probes",
}  # fmt: skip
SELINUX_TYPES = {"", "container_t", "container_init_t", "container_kvm_t", "container_engine_t"}
APPARMOR_TYPES = {"RuntimeDefault", "Localhost"}
SECCOMP_RESTRICTED = {"RuntimeDefault", "Localhost"}


def _containers(spec: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        *(spec.get("initContainers") or []),
        *(spec.get("containers") or []),
        *(spec.get("ephemeralContainers") or []),
    ]


def restricted_violations(
    spec: dict[str, Any], annotations: dict[str, str] | None = None
) -> list[str]:
    """Every Pod Security "restricted" violation of a pod spec (empty list: compliant)."""
    problems: list[str] = []
    pod_sc = spec.get("securityContext") or {}
    containers = _containers(spec)

    # --- baseline -----------------------------------------------------------------
    for field in ("hostNetwork", "hostPID", "hostIPC"):
        if spec.get(field):
            problems.append(f"{field} is true")
    contexts = [("pod", pod_sc)] + [(c["name"], c.get("securityContext") or {}) for c in containers]
    for where, sc in contexts:
        if (sc.get("windowsOptions") or {}).get("hostProcess"):
            problems.append(f"{where}: windowsOptions.hostProcess")
        selinux = sc.get("seLinuxOptions") or {}
        if selinux.get("type", "") not in SELINUX_TYPES:
            problems.append(f"{where}: seLinuxOptions.type {selinux['type']!r}")
        if selinux.get("user") or selinux.get("role"):
            problems.append(f"{where}: seLinuxOptions.user/role set")
        apparmor = sc.get("appArmorProfile")
        if apparmor is not None and apparmor.get("type") not in APPARMOR_TYPES:
            problems.append(f"{where}: appArmorProfile {apparmor.get('type')!r}")
        if (sc.get("seccompProfile") or {}).get("type") == "Unconfined":
            problems.append(f"{where}: seccompProfile Unconfined")
        if sc.get("runAsUser") == 0:
            problems.append(f"{where}: runAsUser 0")
    for key, value in (annotations or {}).items():
        if key.startswith("container.apparmor.security.beta.kubernetes.io/") and not (
            value == "runtime/default" or value.startswith("localhost/")
        ):
            problems.append(f"annotation {key}={value}")
    for sysctl in pod_sc.get("sysctls") or []:
        if sysctl["name"] not in SAFE_SYSCTLS:
            problems.append(f"unsafe sysctl {sysctl['name']}")
    for volume in spec.get("volumes") or []:
        kinds = set(volume) - {"name"}
        if not kinds <= RESTRICTED_VOLUME_TYPES:
            problems.append(f"volume {volume['name']}: type {sorted(kinds)} not allowed")

    # --- per container (baseline + restricted) -------------------------------------
    pod_non_root = pod_sc.get("runAsNonRoot") is True
    pod_seccomp = (pod_sc.get("seccompProfile") or {}).get("type") in SECCOMP_RESTRICTED
    for container in containers:
        name = container["name"]
        sc = container.get("securityContext") or {}
        if sc.get("privileged"):
            problems.append(f"{name}: privileged")
        if sc.get("procMount", "Default") != "Default":
            problems.append(f"{name}: procMount {sc['procMount']}")
        for port in container.get("ports") or []:
            if port.get("hostPort"):
                problems.append(f"{name}: hostPort {port['hostPort']}")
        if sc.get("allowPrivilegeEscalation") is not False:
            problems.append(f"{name}: allowPrivilegeEscalation is not false")
        non_root = sc.get("runAsNonRoot")
        if non_root is False or (non_root is None and not pod_non_root):
            problems.append(f"{name}: runAsNonRoot is not true")
        seccomp = (sc.get("seccompProfile") or {}).get("type")
        if seccomp is None and not pod_seccomp:
            problems.append(f"{name}: no seccompProfile RuntimeDefault/Localhost")
        elif seccomp is not None and seccomp not in SECCOMP_RESTRICTED:
            problems.append(f"{name}: seccompProfile {seccomp}")
        capabilities = sc.get("capabilities") or {}
        if "ALL" not in (capabilities.get("drop") or []):
            problems.append(f"{name}: capabilities.drop lacks ALL")
        added = set(capabilities.get("add") or [])
        if not added <= BASELINE_CAPABILITIES:
            problems.append(f"{name}: adds {sorted(added - BASELINE_CAPABILITIES)}")
        if not added <= {"NET_BIND_SERVICE"}:
            problems.append(f"{name}: adds capabilities beyond NET_BIND_SERVICE")
    return problems


# -- everything we render --------------------------------------------------------------


@pytest.mark.parametrize("example", example_ids())
def test_rendered_pods_are_restricted(example: str) -> None:
    specs = list(pod_specs(render_example(example)))
    assert specs
    for name, spec in specs:
        assert restricted_violations(spec) == [], f"{example} {name}"


@pytest.mark.parametrize("example", example_ids())
async def test_spawned_pods_are_restricted(example: str, kubeconfig: object) -> None:  # noqa: F811
    config = load_example(example)
    for profile in config.profiles:
        pod = await kubespawner_pod(config, "alice", profile.slug)
        spec = pod["spec"]
        annotations = pod["metadata"].get("annotations") or {}
        assert restricted_violations(spec, annotations) == [], f"{example}/{profile.slug}"
        # BAD_INPUTS 55/57: uid 1000, no API token, no privileged init container
        assert spec["automountServiceAccountToken"] is False
        notebook = spec["containers"][0]
        assert notebook["securityContext"]["runAsUser"] == config.kubernetes.users.uid != 0
        assert not spec.get("initContainers")


def test_hub_is_the_only_pod_with_an_api_token() -> None:
    for example in example_ids():
        for name, spec in pod_specs(render_example(example)):
            wants_token = name.endswith("-hub")
            assert spec.get("automountServiceAccountToken") is wants_token, f"{example} {name}"


# -- the checker can fail: one broken rule at a time ------------------------------------


def _hub_spec() -> dict[str, Any]:
    return dict(pod_specs(render_example("minimal")))["Deployment/labfleet-hub"]


def _first(spec: dict[str, Any]) -> dict[str, Any]:
    sc: dict[str, Any] = spec["containers"][0]["securityContext"]
    return sc


BREAKAGES: dict[str, Callable[[dict[str, Any]], None]] = {
    "privileged": lambda s: _first(s).update(privileged=True),
    "escalation-unset": lambda s: _first(s).pop("allowPrivilegeEscalation"),
    "escalation-true": lambda s: _first(s).update(allowPrivilegeEscalation=True),
    "no-drop-all": lambda s: _first(s).update(capabilities={"drop": ["NET_RAW"]}),
    "add-sys-admin": lambda s: _first(s)["capabilities"].update(add=["SYS_ADMIN"]),
    "add-chown": lambda s: _first(s)["capabilities"].update(add=["CHOWN"]),
    "root-user": lambda s: _first(s).update(runAsUser=0),
    "root-allowed": lambda s: _first(s).update(runAsNonRoot=False),
    "no-non-root-anywhere": lambda s: (
        _first(s).pop("runAsNonRoot"),
        s["securityContext"].pop("runAsNonRoot"),
    ),
    "seccomp-unconfined": lambda s: _first(s).update(seccompProfile={"type": "Unconfined"}),
    "no-seccomp-anywhere": lambda s: (
        _first(s).pop("seccompProfile"),
        s["securityContext"].pop("seccompProfile"),
    ),
    "host-network": lambda s: s.update(hostNetwork=True),
    "host-pid": lambda s: s.update(hostPID=True),
    "host-path": lambda s: s["volumes"].append({"name": "h", "hostPath": {"path": "/"}}),
    "inline-nfs": lambda s: s["volumes"].append({"name": "n", "nfs": {"server": "x", "path": "/"}}),
    "host-port": lambda s: s["containers"][0]["ports"][0].update(hostPort=8081),
    "proc-mount": lambda s: _first(s).update(procMount="Unmasked"),
    "selinux-user": lambda s: s["securityContext"].update(seLinuxOptions={"user": "root"}),
    "unsafe-sysctl": lambda s: s["securityContext"].update(
        sysctls=[{"name": "kernel.msgmax", "value": "1"}]
    ),
    "windows-host-process": lambda s: _first(s).update(windowsOptions={"hostProcess": True}),
    "privileged-init": lambda s: s.update(
        initContainers=[
            {
                "name": "block-metadata",
                "image": "busybox",
                "securityContext": {"privileged": True, "capabilities": {"add": ["NET_ADMIN"]}},
            }
        ]
    ),
}


@pytest.mark.parametrize("breakage", sorted(BREAKAGES))
def test_checker_rejects(breakage: str) -> None:
    spec = copy.deepcopy(_hub_spec())
    assert restricted_violations(spec) == []
    BREAKAGES[breakage](spec)
    assert restricted_violations(spec), breakage


def test_checker_rejects_apparmor_unconfined_annotation() -> None:
    annotations = {"container.apparmor.security.beta.kubernetes.io/hub": "unconfined"}
    assert restricted_violations(_hub_spec(), annotations)


def test_variant_pods_are_restricted() -> None:
    """Options the examples leave out (CHP, GPU placeholders, prepuller extras, postgres)."""
    from labfleet.config.load import parse_text
    from labfleet.kube.render import render_objects
    from tests.kube.test_render_helpers import FIXED_SECRETS
    from tests.kube.test_validate_schemas import VARIANTS

    for variant, text in VARIANTS.items():
        for name, spec in pod_specs(render_objects(parse_text(text), FIXED_SECRETS)):
            assert restricted_violations(spec) == [], f"{variant} {name}"
