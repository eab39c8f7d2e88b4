"""What the Kubernetes API double rejects with 422 Invalid.

Schema: the real OpenAPI schema of one Kubernetes version, strict (unknown
fields rejected), through ``kubernetes-validate``. On top of that the
apiserver rules a schema cannot express and that labfleet could plausibly
break: DNS names, label syntax, a Deployment selector that must match its
template, quantities, base64 Secret data and immutable fields.
"""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass
from functools import cache
from typing import Any

import jsonschema
from kubernetes_validate.utils import all_versions, major_minor, schema_contents
from referencing import Registry, Resource

from .kinds import Kind

DNS_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")
DNS_SUBDOMAIN = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")
LABEL_VALUE = re.compile(r"(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?")
CONFIG_KEY = re.compile(r"[-._a-zA-Z0-9]+")
QUANTITY = re.compile(r"[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+|[KMGTPE]i|[mkMGTPE])?")


@dataclass(frozen=True)
class Cause:
    field: str
    message: str
    reason: str = "FieldValueInvalid"


def _label_key_problem(key: str) -> str | None:
    prefix, _, name = key.rpartition("/")
    if prefix and (len(prefix) > 253 or not DNS_SUBDOMAIN.fullmatch(prefix)):
        return "prefix part must be a DNS-1123 subdomain"
    if not name or len(name) > 63 or not LABEL_VALUE.fullmatch(name):
        return "name part must be 63 characters or less, alphanumeric, '-', '_' or '.'"
    return None


def _check_labels(labels: Any, field: str) -> list[Cause]:
    causes = []
    for key, value in (labels or {}).items():
        problem = _label_key_problem(key)
        if problem:
            causes.append(Cause(f"{field}", f"Invalid value: {key!r}: {problem}"))
        if not isinstance(value, str) or len(value) > 63 or not LABEL_VALUE.fullmatch(value):
            causes.append(
                Cause(
                    f"{field}",
                    f"Invalid value: {value!r}: a valid label must be 63 characters or less",
                )
            )
    return causes


def _check_name(kind: Kind, meta: dict[str, Any]) -> list[Cause]:
    name = meta.get("name")
    if not name:
        return [Cause("metadata.name", "Required value: name is required", "FieldValueRequired")]
    if kind.label_name:
        if len(name) > 63 or not DNS_LABEL.fullmatch(name):
            return [Cause("metadata.name", f"Invalid value: {name!r}: a DNS-1123 label must ...")]
    elif len(name) > 253 or not DNS_SUBDOMAIN.fullmatch(name):
        return [Cause("metadata.name", f"Invalid value: {name!r}: a DNS-1123 subdomain must ...")]
    return []


def _pod_spec_causes(spec: dict[str, Any], field: str) -> list[Cause]:
    causes = []
    names: set[str] = set()
    for group in ("initContainers", "containers"):
        for index, container in enumerate(spec.get(group) or []):
            where = f"{field}.{group}[{index}]"
            if not container.get("image"):
                causes.append(Cause(f"{where}.image", "Required value", "FieldValueRequired"))
            if container.get("name") in names:
                causes.append(Cause(f"{where}.name", "Duplicate value", "FieldValueDuplicate"))
            names.add(container.get("name", ""))
            for part in ("limits", "requests"):
                for res, qty in ((container.get("resources") or {}).get(part) or {}).items():
                    if not QUANTITY.fullmatch(str(qty)):
                        causes.append(
                            Cause(f"{where}.resources.{part}[{res}]", f"Invalid value: {qty!r}")
                        )
    volume_names = [v.get("name") for v in spec.get("volumes") or []]
    if len(volume_names) != len(set(volume_names)):
        causes.append(Cause(f"{field}.volumes", "Duplicate value", "FieldValueDuplicate"))
    for group in ("initContainers", "containers"):
        for index, container in enumerate(spec.get(group) or []):
            for mount in container.get("volumeMounts") or []:
                if mount.get("name") not in volume_names:
                    causes.append(
                        Cause(
                            f"{field}.{group}[{index}].volumeMounts",
                            f"Not found: {mount.get('name')!r}",
                            "FieldValueNotFound",
                        )
                    )
    return causes


def _selector_matches(selector: dict[str, Any], labels: dict[str, str]) -> bool:
    for key, value in (selector.get("matchLabels") or {}).items():
        if labels.get(key) != value:
            return False
    for expr in selector.get("matchExpressions") or []:
        key, op, values = expr["key"], expr["operator"], expr.get("values") or []
        present = key in labels
        if op == "In" and (not present or labels[key] not in values):
            return False
        if op == "NotIn" and present and labels[key] in values:
            return False
        if op == "Exists" and not present:
            return False
        if op == "DoesNotExist" and present:
            return False
    return True


def semantic_causes(kind: Kind, obj: dict[str, Any]) -> list[Cause]:
    meta = obj.get("metadata") or {}
    causes = _check_name(kind, meta)
    causes += _check_labels(meta.get("labels"), "metadata.labels")
    for key in meta.get("annotations") or {}:
        problem = _label_key_problem(key)
        if problem:
            causes.append(Cause("metadata.annotations", f"Invalid value: {key!r}: {problem}"))
    if kind.namespaced and not meta.get("namespace"):
        causes.append(Cause("metadata.namespace", "Required value", "FieldValueRequired"))
    spec = obj.get("spec") or {}
    if kind.kind == "Pod":
        causes += _pod_spec_causes(spec, "spec")
    template = (
        spec.get("template") if kind.kind in ("Deployment", "DaemonSet", "StatefulSet") else None
    )
    if template is not None:
        template_labels = (template.get("metadata") or {}).get("labels") or {}
        causes += _check_labels(template_labels, "spec.template.metadata.labels")
        causes += _pod_spec_causes(template.get("spec") or {}, "spec.template.spec")
        selector = spec.get("selector") or {}
        if not selector or not _selector_matches(selector, template_labels):
            causes.append(
                Cause(
                    "spec.template.metadata.labels",
                    "Invalid value: selector does not match template labels",
                )
            )
    if kind.kind == "Secret":
        for key, value in (obj.get("data") or {}).items():
            if not CONFIG_KEY.fullmatch(key):
                causes.append(Cause(f"data[{key}]", "Invalid value: a valid config key"))
            try:
                base64.b64decode(value, validate=True)
            except (binascii.Error, ValueError, TypeError):
                causes.append(Cause(f"data[{key}]", "Invalid value: illegal base64 data"))
    if kind.kind == "ConfigMap":
        for key in list(obj.get("data") or {}) + list(obj.get("binaryData") or {}):
            if not CONFIG_KEY.fullmatch(key):
                causes.append(Cause(f"data[{key}]", "Invalid value: a valid config key"))
    return causes


#: Fields that cannot change once an object exists (kind -> dotted paths).
IMMUTABLE: dict[str, tuple[tuple[str, ...], ...]] = {
    "Deployment": (("spec", "selector"),),
    "DaemonSet": (("spec", "selector"),),
    "StatefulSet": (("spec", "selector"), ("spec", "serviceName")),
    "RoleBinding": (("roleRef",),),
    "ClusterRoleBinding": (("roleRef",),),
    "Service": (("spec", "clusterIP"),),
    "PersistentVolumeClaim": (
        ("spec", "accessModes"),
        ("spec", "storageClassName"),
        ("spec", "volumeName"),
        ("spec", "selector"),
    ),
}


def _get(obj: Any, path: tuple[str, ...]) -> Any:
    for key in path:
        if not isinstance(obj, dict):
            return None
        obj = obj.get(key)
    return obj


def immutable_causes(kind: Kind, old: dict[str, Any], new: dict[str, Any]) -> list[Cause]:
    causes = []
    for path in IMMUTABLE.get(kind.kind, ()):
        if _get(old, path) != _get(new, path):
            causes.append(Cause(".".join(path), "Invalid value: field is immutable"))
    if kind.kind == "Pod":
        old_spec = dict(old.get("spec") or {})
        new_spec = dict(new.get("spec") or {})
        for spec in (old_spec, new_spec):
            spec["containers"] = [
                {k: v for k, v in c.items() if k != "image"} for c in spec.get("containers") or []
            ]
            spec.pop("activeDeadlineSeconds", None)
            spec.pop("tolerations", None)
        if old_spec != new_spec:
            causes.append(
                Cause("spec", "Forbidden: pod updates may not change fields other than images")
            )
    immutable_data = kind.kind in ("Secret", "ConfigMap") and old.get("immutable")
    if immutable_data and any(old.get(k) != new.get(k) for k in ("data", "binaryData")):
        causes.append(Cause("data", "Forbidden: field is immutable when `immutable` is set"))
    return causes


@cache
def _schema_dir(version: str) -> str:
    """The newest schema set not newer than ``version`` (as kubernetes-validate picks)."""
    wanted = major_minor(version.lstrip("v"))
    chosen = [v for v in all_versions() if major_minor(v) <= wanted][-1]
    return f"v{chosen}-local-strict"


@cache
def _definitions(schema_dir: str) -> Resource:  # type: ignore[type-arg]
    return Resource.from_contents(
        schema_contents(f"kubernetes-json-schema/{schema_dir}/_definitions.json", schema_dir)
    )


@cache
def _validator(schema_dir: str, kind: str, api_version: str) -> Any:
    """One compiled validator per kind: kubernetes-validate re-reads 1.4 MB per call."""
    group_version = re.sub(r"^([^./]*)(?:\.[^/]*)?/", r"\1-", api_version)
    path = f"kubernetes-json-schema/{schema_dir}/{kind.lower()}-{group_version}.json"
    schema = schema_contents(path, schema_dir)
    registry: Registry = _definitions(schema_dir) @ (Resource.from_contents(schema) @ Registry())  # type: ignore[type-arg]
    return jsonschema.validators.Draft202012Validator(schema, registry=registry)


def schema_causes(kind: Kind, obj: dict[str, Any], version: str) -> list[Cause]:
    """Strict validation against the real OpenAPI schema of ``version``."""
    if not kind.has_schema:
        return []
    validator = _validator(_schema_dir(version), kind.kind, kind.api_version)
    error = jsonschema.exceptions.best_match(validator.iter_errors(obj))
    if error is None:
        return []
    field = ".".join(str(p) for p in error.absolute_path)
    return [Cause(field, error.message, "FieldValueInvalid")]
