"""Field ownership (``metadata.managedFields``) for the Kubernetes API double.

Implements the rules of server-side apply that labfleet depends on: an
applier owns exactly the fields of its last applied configuration; fields it
stops applying are removed unless another manager owns them; changing a field
another manager owns is a conflict unless forced; plain writes (create, PUT,
merge patches) transfer ownership of the fields they change.
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from .fieldsets import (
    MISSING,
    FieldSet,
    Path,
    changed_paths,
    fieldset,
    from_fields_v1,
    merge,
    remove_path,
    to_fields_v1,
    value_at,
)


@dataclass
class Entry:
    manager: str
    operation: str  # "Apply" or "Update"
    api_version: str
    fields: FieldSet
    time: str


@dataclass(frozen=True)
class Conflict:
    manager: str
    path: Path

    @property
    def field(self) -> str:
        return render_path(self.path)


def now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def render_path(path: Path) -> str:
    """``.spec.template.spec.containers[name="hub"].image`` like the real messages."""
    out = ""
    for element in path:
        if element.startswith("f:"):
            out += "." + element[2:]
        elif element.startswith("k:"):
            key = json.loads(element[2:])
            out += "[" + ",".join(f"{k}={json.dumps(v)}" for k, v in key.items()) + "]"
    return out


def read_entries(obj: dict[str, Any]) -> list[Entry]:
    out = []
    for raw in obj.get("metadata", {}).get("managedFields") or []:
        out.append(
            Entry(
                manager=raw["manager"],
                operation=raw["operation"],
                api_version=raw.get("apiVersion", ""),
                fields=from_fields_v1(raw.get("fieldsV1") or {}),
                time=raw.get("time", now()),
            )
        )
    return out


def write_entries(obj: dict[str, Any], entries: list[Entry]) -> None:
    managed = [
        {
            "manager": e.manager,
            "operation": e.operation,
            "apiVersion": e.api_version,
            "time": e.time,
            "fieldsType": "FieldsV1",
            "fieldsV1": to_fields_v1(e.fields),
        }
        for e in entries
        if e.fields
    ]
    meta = obj.setdefault("metadata", {})
    if managed:
        meta["managedFields"] = managed
    else:
        meta.pop("managedFields", None)


def _owned_below(entries: list[Entry], prefix: Path) -> bool:
    return any(p[: len(prefix)] == prefix for e in entries for p in e.fields)


def _is_key_field(path: Path) -> bool:
    """``.../k:{"name":"x"}/f:name``: the field that identifies a list item."""
    if len(path) < 2 or not path[-2].startswith("k:") or not path[-1].startswith("f:"):
        return False
    return path[-1][2:] in json.loads(path[-2][2:])


def _remove_dropped(obj: dict[str, Any], dropped: FieldSet, others: list[Entry]) -> None:
    """Remove what an applier stopped applying, unless another manager owns it.

    Whole list items go first (their key fields are needed to find them);
    fields inside an item that stays are removed deepest first, but never the
    item's key fields.
    """
    gone: list[Path] = []
    for path in sorted((p for p in dropped if p[-1] == "."), key=len):
        item = path[:-1]
        if any(item[: len(g)] == g for g in gone) or _owned_below(others, item):
            continue
        remove_path(obj, path)
        gone.append(item)
    leaves = [p for p in dropped if p[-1] != "." and not any(p[: len(g)] == g for g in gone)]
    for path in sorted(leaves, key=len, reverse=True):
        if not _is_key_field(path) and not _owned_below(others, path):
            remove_path(obj, path)


def server_side_apply(
    live: dict[str, Any] | None,
    applied: dict[str, Any],
    manager: str,
    force: bool,
) -> tuple[dict[str, Any], list[Conflict]]:
    """Merge ``applied`` into ``live`` as ``manager``; return (object, conflicts).

    When there are conflicts and ``force`` is false the object is returned
    unchanged and the caller answers 409.
    """
    base = copy.deepcopy(live) if live is not None else {}
    entries = read_entries(base)
    api_version = applied.get("apiVersion", "")
    new_set = fieldset(applied)
    mine = next((e for e in entries if e.manager == manager and e.operation == "Apply"), None)
    others = [e for e in entries if e is not mine]

    conflicts = []
    for path in sorted(new_set):
        if path[-1] == ".":
            continue
        if value_at(base, path) == value_at(applied, path):
            continue
        for other in others:
            if path in other.fields:
                conflicts.append(Conflict(other.manager, path))
    if conflicts and not force:
        return base, conflicts
    for conflict in conflicts:
        for other in others:
            other.fields.discard(conflict.path)

    if mine is not None:
        _remove_dropped(base, mine.fields - new_set, others)

    result = merge(base, {k: v for k, v in applied.items() if k != "status"})
    if not isinstance(result, dict):
        raise TypeError("applied configuration must be an object")
    stamp = now()
    if mine is None:
        mine = Entry(manager, "Apply", api_version, new_set, stamp)
    else:
        mine.fields, mine.time, mine.api_version = new_set, stamp, api_version
    write_entries(result, [*others, mine])
    return result, conflicts


def record_update(old: dict[str, Any] | None, new: dict[str, Any], manager: str) -> None:
    """Give ``manager`` (operation Update) the fields this write changed."""
    entries = read_entries(old) if old is not None else []
    changed = changed_paths(old or {}, new)
    for entry in entries:
        entry.fields -= changed
        entry.fields = {p for p in entry.fields if value_at(new, p) is not MISSING}
    mine = next((e for e in entries if e.manager == manager and e.operation == "Update"), None)
    if mine is None:
        mine = Entry(manager, "Update", new.get("apiVersion", ""), set(), now())
        entries.append(mine)
    mine.fields |= changed
    mine.time = now()
    write_entries(new, entries)
