"""Test-only translation of rendered Deployments into ``podman run`` arguments.

No kubelet runs here, so this stands in for the part of one that matters to the hub and
the proxy: the container's image, command and args, its environment (values, Secret and
ConfigMap keys, the namespace field), its security context (user, group, read-only root,
dropped capabilities, no privilege escalation) and its volumes (ConfigMap and Secret files,
emptyDir, a PersistentVolumeClaim as a host directory). Services become host names of the
shared pod network. It is pure: files to write are returned, nothing is run.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass
class Translated:
    argv: list[str]
    #: host path -> content, for ConfigMap/Secret volumes
    files: dict[Path, bytes] = field(default_factory=dict)
    #: host directories to create (owned by the pod's user)
    dirs: list[Path] = field(default_factory=list)


def find(objects: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    for obj in objects:
        if obj["kind"] == kind and obj["metadata"]["name"] == name:
            return obj
    raise KeyError(f"{kind}/{name} is not among the rendered objects")


def _data(obj: dict[str, Any]) -> dict[str, bytes]:
    out = {k: v.encode() for k, v in (obj.get("stringData") or {}).items()}
    if obj["kind"] == "Secret":
        out.update({k: base64.b64decode(v) for k, v in (obj.get("data") or {}).items()})
    else:
        out.update({k: v.encode() for k, v in (obj.get("data") or {}).items()})
    return out


def _env(container: dict[str, Any], objects: list[dict[str, Any]], ns: str) -> list[str]:
    argv: list[str] = []
    for item in container.get("env", []):
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


def _security(pod: dict[str, Any], container: dict[str, Any]) -> list[str]:
    merged = {**pod.get("securityContext", {}), **container.get("securityContext", {})}
    argv: list[str] = []
    if "runAsUser" in merged:
        argv += ["--user", f"{merged['runAsUser']}:{merged.get('runAsGroup', merged['runAsUser'])}"]
    if merged.get("readOnlyRootFilesystem"):
        argv.append("--read-only")
    if merged.get("allowPrivilegeEscalation") is False:
        argv += ["--security-opt", "no-new-privileges"]
    for cap in merged.get("capabilities", {}).get("drop", []):
        argv += ["--cap-drop", cap]
    return argv


def translate(
    deployment: dict[str, Any],
    objects: list[dict[str, Any]],
    *,
    pod: str,
    image: str,
    workdir: Path,
    extra_mounts: list[str] = (),  # type: ignore[assignment]
) -> Translated:
    """``podman run`` for the Deployment's first container, joined to ``pod``."""
    ns = deployment["metadata"].get("namespace", "default")
    spec = deployment["spec"]["template"]["spec"]
    container = spec["containers"][0]
    name = f"{pod}-{container['name']}"
    out = Translated(argv=["podman", "run", "--detach", "--init", "--pod", pod, "--name", name])
    out.argv += _env(container, objects, ns)
    out.argv += _security(spec, container)
    volumes = {v["name"]: v for v in spec.get("volumes", [])}
    for mount in container.get("volumeMounts", []):
        volume = volumes[mount["name"]]
        host = workdir / name / mount["name"]
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
            out.dirs.append(host)
            out.argv += ["--volume", f"{host}:{mount['mountPath']}:rw{ro}"]
        else:
            raise ValueError(f"volume {mount['name']}: unsupported kind {volume}")
    out.argv += list(extra_mounts)
    if container.get("command"):
        out.argv += ["--entrypoint", container["command"][0]]
        out.argv += [image, *container["command"][1:], *container.get("args", [])]
    else:
        out.argv += [image, *container.get("args", [])]
    return out


def service_hosts(objects: list[dict[str, Any]]) -> list[str]:
    """``--add-host`` values: every Service name (short and namespaced) -> the pod itself."""
    hosts: list[str] = []
    for obj in objects:
        if obj["kind"] != "Service":
            continue
        name, ns = obj["metadata"]["name"], obj["metadata"].get("namespace", "default")
        for host in (name, f"{name}.{ns}", f"{name}.{ns}.svc", f"{name}.{ns}.svc.cluster.local"):
            hosts += ["--add-host", f"{host}:127.0.0.1"]
    return hosts


def http_probe(container: dict[str, Any], which: str) -> tuple[str, int] | None:
    """(path, container port) of an httpGet probe, named ports resolved."""
    probe = container.get(which) or {}
    get = probe.get("httpGet")
    if get is None:
        return None
    port = get["port"]
    if isinstance(port, str):
        port = next(p["containerPort"] for p in container["ports"] if p["name"] == port)
    return get["path"], int(port)
