"""JSON merge patch (RFC 7386) and the simple cases of strategic merge patch."""

from __future__ import annotations

import copy
from typing import Any

from .fieldsets import _find_item, item_key, list_keys


def merge_patch(target: Any, patch: Any) -> Any:
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    out = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            out.pop(key, None)
        else:
            out[key] = merge_patch(out.get(key), value)
    return out


def strategic_merge_patch(target: Any, patch: Any, field: str = "") -> Any:
    """Merge patch, except that keyed lists (containers, env, ...) merge by key."""
    if isinstance(patch, dict):
        out = dict(target) if isinstance(target, dict) else {}
        if patch.get("$patch") == "replace":
            return {k: copy.deepcopy(v) for k, v in patch.items() if k != "$patch"}
        for key, value in patch.items():
            if key.startswith("$"):
                continue
            if value is None:
                out.pop(key, None)
            else:
                out[key] = strategic_merge_patch(out.get(key), value, key)
        return out
    if isinstance(patch, list) and isinstance(target, list):
        keys = list_keys(field, patch)
        if keys is None:
            return copy.deepcopy(patch)
        result = [copy.deepcopy(i) for i in target]
        for item in patch:
            index = _find_item(result, item_key(item, keys))
            if item.get("$patch") == "delete":
                if index is not None:
                    result.pop(index)
            elif index is None:
                result.append(copy.deepcopy(item))
            else:
                result[index] = strategic_merge_patch(result[index], item)
        return result
    return copy.deepcopy(patch)
