"""Test-only translation of rendered pod specs into ``podman run`` arguments.

No kubelet runs here, so this stands in for the part of one that matters to labfleet's pods:
the container's image, command and args, its environment (values, Secret and ConfigMap keys,
the namespace field), its security context (user, group, fsGroup, read-only root, dropped
capabilities, no privilege escalation, runAsNonRoot), its memory/CPU limits and its volumes
(ConfigMap and Secret files, emptyDir, a PersistentVolumeClaim as a host directory, and the
service-account token a pod with ``automountServiceAccountToken`` gets), and its init
containers, each a ``podman run`` of its own to be run in order before the main one.
Services become host names (``--add-host``). It is pure: files to write and directories to
create are returned, nothing is run.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

#: Where a kubelet mounts a pod's service-account token, CA and namespace.
SERVICE_ACCOUNT_DIR = "/var/run/secrets/kubernetes.io/serviceaccount"
_BINARY_UNITS = {"Ki": "k", "Mi": "m", "Gi": "g", "Ti": "t"}
_DECIMAL_UNITS = {"k": 10**3, "M": 10**6, "G": 10**9, "T": 10**12}


@dataclass(frozen=True)
class ClusterAccess:
    """What an in-cluster client finds in a pod: the API's address, its CA and a token."""

    host: str
    port: int
    ca_pem: bytes
    token: str


@dataclass
class Translated:
    argv: list[str]
    #: host path -> content, for ConfigMap/Secret/service-account volumes
    files: dict[Path, bytes] = field(default_factory=dict)
    #: host directories to create, owned by (uid, gid): emptyDir and claims
    dirs: dict[Path, tuple[int, int]] = field(default_factory=dict)
    #: (init container name, ``podman run`` argv), to run to completion in order first
    init: list[tuple[str, list[str]]] = field(default_factory=list)
    #: the pod's other containers (a sidecar, the services' gate): (name, argv), detached,
    #: named ``<name>-<container>``; they need a shared network (``--pod``) in ``placement``
    others: list[tuple[str, list[str]]] = field(default_factory=list)


def find(objects: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    for obj in objects:
        if obj["kind"] == kind and obj["metadata"]["name"] == name:
            return obj
    raise KeyError(f"{kind}/{name} is not among the objects")


def _data(obj: dict[str, Any]) -> dict[str, bytes]:
    out = {k: v.encode() for k, v in (obj.get("stringData") or {}).items()}
    if obj["kind"] == "Secret":
        out.update({k: base64.b64decode(v) for k, v in (obj.get("data") or {}).items()})
    else:
        out.update({k: v.encode() for k, v in (obj.get("data") or {}).items()})
    return out


def _env(container: dict[str, Any], objects: list[dict[str, Any]], ns: str) -> list[str]:
    argv: list[str] = []
    for item in container.get("env") or []:
        if "value" in item:
            value = str(item["value"])
        else:
            source = item["valueFrom"]
            if "secretKeyRef" in source:
                ref = source["secretKeyRef"]
                value = _data(find(objects, "Secret", ref["name"]))[ref["key"]].decode()
            elif "configMapKeyRef" in source:
                ref = source["configMapKeyRef"]
                value = _data(find(objects, "ConfigMap", ref["name"]))[ref["key"]].decode()
            elif source.get("fieldRef", {}).get("fieldPath") == "metadata.namespace":
                value = ns
            else:
                raise ValueError(f"env {item['name']}: unsupported source {source}")
        argv += ["--env", f"{item['name']}={value}"]
    return argv


def identity(spec: dict[str, Any], container: dict[str, Any]) -> tuple[int, int, int | None]:
    """(uid, gid, fsGroup) the container runs as; refuses root where runAsNonRoot says so."""
    merged = {**(spec.get("securityContext") or {}), **(container.get("securityContext") or {})}
    uid = merged.get("runAsUser")
    if merged.get("runAsNonRoot") and not uid:
        # a kubelet checks the image's user; this translation insists on a numeric one
        raise ValueError("runAsNonRoot without a non-zero runAsUser")
    uid = int(uid or 0)
    gid = int(merged.get("runAsGroup", uid))
    fs_group = (spec.get("securityContext") or {}).get("fsGroup")
    return uid, gid, None if fs_group is None else int(fs_group)


def _security(spec: dict[str, Any], container: dict[str, Any]) -> list[str]:
    merged = {**(spec.get("securityContext") or {}), **(container.get("securityContext") or {})}
    uid, gid, fs_group = identity(spec, container)
    argv = ["--user", f"{uid}:{gid}"]
    groups = list((spec.get("securityContext") or {}).get("supplementalGroups") or [])
    if fs_group is not None:
        groups.append(fs_group)
    for group in dict.fromkeys(groups):
        argv += ["--group-add", str(group)]
    if merged.get("privileged"):
        raise ValueError("privileged containers are not translated")
    if merged.get("readOnlyRootFilesystem"):
        argv.append("--read-only")
    if merged.get("allowPrivilegeEscalation") is False:
        argv += ["--security-opt", "no-new-privileges"]
    for cap in (merged.get("capabilities") or {}).get("drop") or []:
        argv += ["--cap-drop", cap]
    for cap in (merged.get("capabilities") or {}).get("add") or []:
        argv += ["--cap-add", cap]
    return argv


def memory_flag(quantity: str) -> str:
    """A Kubernetes memory quantity as podman's ``--memory`` value (bytes or k/m/g/t)."""
    for suffix, unit in _BINARY_UNITS.items():
        if quantity.endswith(suffix):
            return quantity[: -len(suffix)] + unit
    for suffix, factor in _DECIMAL_UNITS.items():
        if quantity.endswith(suffix):
            return str(int(float(quantity[: -len(suffix)]) * factor))
    return str(int(float(quantity)))


def cpu_flag(quantity: str) -> str:
    if quantity.endswith("m"):
        return str(int(quantity[:-1]) / 1000)
    return str(float(quantity))


def _limits(container: dict[str, Any]) -> list[str]:
    limits = (container.get("resources") or {}).get("limits") or {}
    argv: list[str] = []
    if "memory" in limits:
        argv += ["--memory", memory_flag(str(limits["memory"]))]
    if "cpu" in limits:
        argv += ["--cpus", cpu_flag(str(limits["cpu"]))]
    return argv


def _volumes(
    spec: dict[str, Any],
    container: dict[str, Any],
    objects: list[dict[str, Any]],
    host_dir: Path,
    owner: tuple[int, int],
    out: Translated,
    claims_dir: Path | None = None,
) -> None:
    volumes = {v["name"]: v for v in spec.get("volumes") or []}
    for mount in container.get("volumeMounts") or []:
        volume = volumes[mount["name"]]
        host = host_dir / mount["name"]
        if claims_dir is not None and "persistentVolumeClaim" in volume:
            # one directory per claim, whichever pod mounts it (the hub's and a backup job's)
            host = claims_dir / volume["persistentVolumeClaim"]["claimName"]
        if mount.get("subPath"):
            host = host / mount["subPath"]
        ro = ",ro" if mount.get("readOnly") else ""
        if "configMap" in volume or "secret" in volume:
            kind, ref = (
                ("ConfigMap", volume["configMap"]["name"])
                if "configMap" in volume
                else ("Secret", volume["secret"]["secretName"])
            )
            for key, value in _data(find(objects, kind, ref)).items():
                out.files[host / key] = value
            out.argv += ["--volume", f"{host}:{mount['mountPath']}:ro"]
        elif "emptyDir" in volume or "persistentVolumeClaim" in volume:
            out.dirs[host] = owner
            out.argv += ["--volume", f"{host}:{mount['mountPath']}:rw{ro}"]
        else:
            raise ValueError(f"volume {mount['name']}: unsupported kind {volume}")


def init_name(name: str, init: str) -> str:
    """The podman container that runs init container ``init`` of the pod container ``name``."""
    return f"{name}-init-{init}"


def _container_argv(
    spec: dict[str, Any],
    container: dict[str, Any],
    namespace: str,
    objects: list[dict[str, Any]],
    head: list[str],
    host_dir: Path,
    cluster: ClusterAccess | None,
    out: Translated,
    claims_dir: Path | None,
) -> list[str]:
    """``podman run`` for one container of the pod; the pod's volumes are host directories."""
    saved, out.argv = out.argv, list(head)
    out.argv += _env(container, objects, namespace)
    out.argv += _security(spec, container)
    out.argv += _limits(container)
    uid, gid, fs_group = identity(spec, container)
    owner = (uid, fs_group if fs_group is not None else gid)
    _volumes(spec, container, objects, host_dir, owner, out, claims_dir)
    if spec.get("automountServiceAccountToken", True) and cluster is not None:
        account = host_dir / "kube-api-access"
        out.files[account / "token"] = cluster.token.encode()
        out.files[account / "ca.crt"] = cluster.ca_pem
        out.files[account / "namespace"] = namespace.encode()
        out.argv += ["--volume", f"{account}:{SERVICE_ACCOUNT_DIR}:ro"]
        out.argv += ["--env", f"KUBERNETES_SERVICE_HOST={cluster.host}"]
        out.argv += ["--env", f"KUBERNETES_SERVICE_PORT={cluster.port}"]
    if container.get("workingDir"):
        out.argv += ["--workdir", container["workingDir"]]
    image = container["image"]
    if container.get("command"):
        out.argv += ["--entrypoint", container["command"][0]]
        out.argv += [image, *container["command"][1:], *(container.get("args") or [])]
    else:
        out.argv += [image, *(container.get("args") or [])]
    argv, out.argv = out.argv, saved
    return argv


def translate_pod(
    spec: dict[str, Any],
    namespace: str,
    objects: list[dict[str, Any]],
    *,
    name: str,
    workdir: Path,
    placement: list[str],
    cluster: ClusterAccess | None = None,
    claims_dir: Path | None = None,
) -> Translated:
    """``podman run`` for each of the pod spec's containers, and one per init container.

    ``placement``: where it runs (``--pod P``, or ``--network N`` with ``--add-host``s).
    ``cluster``: what a pod that automounts its service-account token gets.
    ``claims_dir``: where claims live, one directory per claim name, shared by every pod
    that mounts the claim (None: a directory of this pod's own per claim mount).
    The init containers (``Translated.init``, in the spec's order) run in the foreground
    and are kept after they exit, so their exit code and log stay readable; they share
    the pod's volume directories with the main container, as in a pod.
    """
    out = Translated(argv=[])
    host_dir = workdir / name
    for init in spec.get("initContainers") or []:
        head = ["podman", "run", "--init", "--name", init_name(name, init["name"]), *placement]
        argv = _container_argv(
            spec, init, namespace, objects, head, host_dir, cluster, out, claims_dir
        )
        out.init.append((init["name"], argv))
    head = ["podman", "run", "--detach", "--init", "--name", name, *placement]
    out.argv = _container_argv(
        spec, spec["containers"][0], namespace, objects, head, host_dir, cluster, out, claims_dir
    )
    for other in spec["containers"][1:]:
        head = ["podman", "run", "--detach", "--init", "--name", f"{name}-{other['name']}"]
        argv = _container_argv(
            spec, other, namespace, objects, [*head, *placement], host_dir, cluster, out, claims_dir
        )
        out.others.append((other["name"], argv))
    return out


def translate(
    deployment: dict[str, Any],
    objects: list[dict[str, Any]],
    *,
    pod: str,
    workdir: Path,
    cluster: ClusterAccess | None = None,
    claims_dir: Path | None = None,
) -> Translated:
    """``podman run`` for a Deployment's first container, joined to the podman pod ``pod``."""
    ns = deployment["metadata"].get("namespace", "default")
    spec = deployment["spec"]["template"]["spec"]
    name = f"{pod}-{spec['containers'][0]['name']}"
    return translate_pod(
        spec,
        ns,
        objects,
        name=name,
        workdir=workdir,
        placement=["--pod", pod],
        cluster=cluster,
        claims_dir=claims_dir,
    )


def service_hosts(objects: list[dict[str, Any]], address: str = "127.0.0.1") -> list[str]:
    """``--add-host`` values: every Service name (short and namespaced) -> ``address``."""
    hosts: list[str] = []
    for obj in objects:
        if obj["kind"] != "Service":
            continue
        name, ns = obj["metadata"]["name"], obj["metadata"].get("namespace", "default")
        for host in (name, f"{name}.{ns}", f"{name}.{ns}.svc", f"{name}.{ns}.svc.cluster.local"):
            hosts += ["--add-host", f"{host}:{address}"]
    return hosts


def http_probe(container: dict[str, Any], which: str) -> tuple[str, int] | None:
    """(path, container port) of an httpGet probe, named ports resolved."""
    probe = container.get(which) or {}
    get = probe.get("httpGet")
    if get is None:
        return None
    return get["path"], container_port(container, get["port"])


def tcp_probe(container: dict[str, Any], which: str) -> int | None:
    probe = container.get(which) or {}
    socket = probe.get("tcpSocket")
    return None if socket is None else container_port(container, socket["port"])


def container_port(container: dict[str, Any], port: int | str) -> int:
    if isinstance(port, str):
        return int(next(p["containerPort"] for p in container["ports"] if p["name"] == port))
    return int(port)
