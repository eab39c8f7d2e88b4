"""Field-level difference between a live object and what applying would make of it.

Pure. Both sides come from the API server (the live object and the result
of a server-side dry-run apply), so server defaults and normalisation never
show up as spurious changes. Secret values are never shown.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

#: Metadata the server maintains; changes there are not configuration changes.
_VOLATILE_METADATA = (
    "resourceVersion",
    "managedFields",
    "generation",
    "uid",
    "creationTimestamp",
    "selfLink",
)
_SENSITIVE_KINDS = frozenset({"Secret"})
_MISSING = object()
MASK = "(sensitive value)"


@dataclass(frozen=True)
class FieldChange:
    """One changed field: ``path`` like ``spec.template.spec.containers[hub].image``."""

    path: str
    before: Any
    after: Any

    @property
    def added(self) -> bool:
        return self.before is None

    @property
    def removed(self) -> bool:
        return self.after is None


def comparable(obj: dict[str, Any]) -> dict[str, Any]:
    """The configuration part of an object: no status, no server bookkeeping."""
    out = {k: v for k, v in obj.items() if k != "status"}
    meta = {k: v for k, v in (obj.get("metadata") or {}).items() if k not in _VOLATILE_METADATA}
    out["metadata"] = meta
    return out


def _item_name(item: Any, index: int) -> str:
    if isinstance(item, dict):
        for key in ("name", "mountPath", "containerPort", "port", "type", "key"):
            if key in item:
                return str(item[key])
    return str(index)


def _keyed(items: list[Any]) -> dict[str, Any] | None:
    keys = [_item_name(item, i) for i, item in enumerate(items)]
    if len(set(keys)) != len(keys) or not all(isinstance(i, dict) for i in items):
        return None
    return dict(zip(keys, items, strict=True))


def _walk(before: Any, after: Any, path: str, out: list[FieldChange]) -> None:
    if before == after:
        return
    if isinstance(before, dict) and isinstance(after, dict):
        for key in sorted(set(before) | set(after)):
            child = f"{path}.{key}" if path else str(key)
            _walk(before.get(key, _MISSING), after.get(key, _MISSING), child, out)
        return
    if isinstance(before, list) and isinstance(after, list) and before and after:
        old, new = _keyed(before), _keyed(after)
        if old is not None and new is not None:
            for key in list(old) + [k for k in new if k not in old]:
                _walk(old.get(key, _MISSING), new.get(key, _MISSING), f"{path}[{key}]", out)
            return
    out.append(
        FieldChange(
            path,
            None if before is _MISSING else before,
            None if after is _MISSING else after,
        )
    )


def field_diff(live: dict[str, Any], proposed: dict[str, Any]) -> list[FieldChange]:
    """Changed fields from ``live`` to ``proposed`` (values of Secrets masked)."""
    changes: list[FieldChange] = []
    _walk(comparable(live), comparable(proposed), "", changes)
    if live.get("kind") in _SENSITIVE_KINDS:
        changes = [_mask(c) for c in changes]
    return changes


def _mask(change: FieldChange) -> FieldChange:
    if change.path.split(".")[0] in ("data", "stringData"):
        return FieldChange(
            change.path,
            None if change.before is None else MASK,
            None if change.after is None else MASK,
        )
    return change
