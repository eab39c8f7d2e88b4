"""Server-side apply for the Kubernetes API double: field sets and merging.

A field set is a set of paths; a path is a tuple of the same path elements
the real API server writes into ``metadata.managedFields`` (``fieldsV1``):
``"f:name"`` for a map key, ``'k:{"name":"hub"}'`` for an item of an
associative list and ``"."`` for the list item itself. Lists not listed in
:data:`LIST_KEYS` are atomic, as they are for most fields in the real schema.

This is a faithful subset of structured-merge-diff, enough for the fields
labfleet and KubeSpawner set; it is test code, not a reimplementation.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterable
from typing import Any

Path = tuple[str, ...]
FieldSet = set[Path]

#: Field name -> the keys that identify an item of that associative list.
LIST_KEYS: dict[str, tuple[str, ...]] = {
    "containers": ("name",),
    "initContainers": ("name",),
    "ephemeralContainers": ("name",),
    "volumes": ("name",),
    "env": ("name",),
    "volumeMounts": ("mountPath",),
    "imagePullSecrets": ("name",),
    "hostAliases": ("ip",),
    "conditions": ("type",),
    "topologySpreadConstraints": ("topologyKey", "whenUnsatisfiable"),
}
#: Defaults that are part of an item's key (the server defaults them first).
KEY_DEFAULTS = {"protocol": "TCP"}
#: Top-level metadata fields a manager can own.
OWNABLE_METADATA = ("labels", "annotations", "ownerReferences", "finalizers")
MISSING: Any = object()


def list_keys(field: str, items: list[Any]) -> tuple[str, ...] | None:
    """The key fields of the list ``field``, or None when it is atomic."""
    if not items or not all(isinstance(i, dict) for i in items):
        return LIST_KEYS.get(field) if not items else None
    if field == "ports":
        if all("containerPort" in i for i in items):
            return ("containerPort", "protocol")
        if all("port" in i for i in items):
            return ("port", "protocol")
        return None
    return LIST_KEYS.get(field)


def item_key(item: dict[str, Any], keys: tuple[str, ...]) -> str:
    """The ``k:{...}`` path element of one list item."""
    value = {k: item.get(k, KEY_DEFAULTS.get(k)) for k in keys}
    value = {k: v for k, v in value.items() if v is not None}
    return "k:" + json.dumps(value, separators=(",", ":"), sort_keys=True)


def _walk(value: Any, path: Path, field: str, out: FieldSet) -> None:
    if isinstance(value, dict) and value:
        for key, child in value.items():
            _walk(child, (*path, f"f:{key}"), key, out)
        return
    if isinstance(value, list) and value:
        keys = list_keys(field, value)
        if keys is not None:
            for item in value:
                item_path = (*path, item_key(item, keys))
                out.add((*item_path, "."))
                for key, child in item.items():
                    _walk(child, (*item_path, f"f:{key}"), key, out)
            return
    out.add(path)


def fieldset(obj: dict[str, Any]) -> FieldSet:
    """The fields an object (or applied configuration) sets, status excluded."""
    out: FieldSet = set()
    meta = obj.get("metadata") or {}
    for key in OWNABLE_METADATA:
        if key in meta:
            _walk(meta[key], ("f:metadata", f"f:{key}"), key, out)
    for key, value in obj.items():
        if key not in ("apiVersion", "kind", "metadata", "status"):
            _walk(value, (f"f:{key}",), key, out)
    return out


def to_fields_v1(paths: Iterable[Path]) -> dict[str, Any]:
    tree: dict[str, Any] = {}
    for path in paths:
        node = tree
        for element in path:
            node = node.setdefault(element, {})
    return tree


def from_fields_v1(tree: dict[str, Any], prefix: Path = ()) -> FieldSet:
    out: FieldSet = set()
    for element, child in tree.items():
        path = (*prefix, element)
        if child:
            out |= from_fields_v1(child, path)
        else:
            out.add(path)
    return out


def _find_item(items: list[Any], element: str) -> int | None:
    wanted = json.loads(element[2:])
    for index, item in enumerate(items):
        if isinstance(item, dict) and all(
            item.get(k, KEY_DEFAULTS.get(k)) == v for k, v in wanted.items()
        ):
            return index
    return None


def value_at(obj: Any, path: Path) -> Any:
    node = obj
    for element in path:
        if element == ".":
            return node
        if element.startswith("f:"):
            if not isinstance(node, dict) or element[2:] not in node:
                return MISSING
            node = node[element[2:]]
        elif element.startswith("k:"):
            if not isinstance(node, list):
                return MISSING
            index = _find_item(node, element)
            if index is None:
                return MISSING
            node = node[index]
        else:
            return MISSING
    return node


def remove_path(obj: dict[str, Any], path: Path) -> None:
    """Delete the field (or list item, for a path ending in ".") at ``path``."""
    if path and path[-1] == ".":
        path = path[:-1]
    parents: list[tuple[Any, str]] = []
    node: Any = obj
    for element in path:
        parents.append((node, element))
        node = value_at(node, (element,))
        if node is MISSING:
            return
    container, element = parents[-1]
    if element.startswith("f:"):
        container.pop(element[2:], None)
    else:
        index = _find_item(container, element)
        if index is not None:
            container.pop(index)
    # Drop maps and lists this removal left empty, as the real server does.
    for parent, parent_element in reversed(parents[:-1]):
        child = value_at(parent, (parent_element,))
        if child in ({}, []) and parent_element.startswith("f:"):
            parent.pop(parent_element[2:], None)
        else:
            break


def merge(live: Any, applied: Any, field: str = "") -> Any:
    """Merge an applied configuration into a live value (maps and keyed lists deep)."""
    if isinstance(live, dict) and isinstance(applied, dict):
        out = dict(live)
        for key, value in applied.items():
            out[key] = merge(live[key], value, key) if key in live else copy.deepcopy(value)
        return out
    if isinstance(live, list) and isinstance(applied, list):
        keys = list_keys(field, applied) or (list_keys(field, live) if not applied else None)
        if keys is None:
            return copy.deepcopy(applied)
        result = [copy.deepcopy(i) for i in live]
        for item in applied:
            index = _find_item(result, item_key(item, keys))
            if index is None:
                result.append(copy.deepcopy(item))
            else:
                result[index] = merge(result[index], item, "")
        return result
    return copy.deepcopy(applied)


def changed_paths(old: dict[str, Any], new: dict[str, Any]) -> FieldSet:
    """Leaf paths of ``new`` whose value differs from ``old`` (added or modified)."""
    out: FieldSet = set()
    for path in fieldset(new):
        before = value_at(old, path)
        if path[-1] == ".":
            if before is MISSING:
                out.add(path)
        elif before != value_at(new, path):
            out.add(path)
    return out
