"""Label and field selectors as the API server parses them from query strings."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

_SET = re.compile(
    r"^\s*(!?)([^\s!=,()]+)\s*(?:(notin|in)\s*\(([^)]*)\)|(==|=|!=)\s*([^,\s]*))?\s*$"
)


@dataclass(frozen=True)
class Requirement:
    key: str
    op: str  # "=", "!=", "in", "notin", "exists", "!exists"
    values: tuple[str, ...] = ()

    def matches(self, labels: dict[str, str]) -> bool:
        present = self.key in labels
        value = labels.get(self.key)
        if self.op == "=":
            return present and value == self.values[0]
        if self.op == "!=":
            return not present or value != self.values[0]
        if self.op == "in":
            return present and value in self.values
        if self.op == "notin":
            return not present or value not in self.values
        if self.op == "exists":
            return present
        return not present


class SelectorError(ValueError):
    pass


def _split(text: str) -> list[str]:
    parts, depth, current = [], 0, ""
    for char in text:
        if char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
        if char == "," and depth == 0:
            parts.append(current)
            current = ""
        else:
            current += char
    if current.strip():
        parts.append(current)
    return parts


def parse_labels(text: str | None) -> list[Requirement]:
    out = []
    for part in _split(text or ""):
        match = _SET.match(part)
        if not match:
            raise SelectorError(f"unable to parse requirement: {part!r}")
        negated, key, set_op, set_values, op, value = match.groups()
        if set_op:
            values = tuple(v.strip() for v in set_values.split(",") if v.strip())
            out.append(Requirement(key, set_op, values))
        elif op:
            out.append(Requirement(key, "!=" if op == "!=" else "=", (value,)))
        else:
            out.append(Requirement(key, "!exists" if negated else "exists"))
    return out


def parse_fields(text: str | None) -> list[Requirement]:
    out = []
    for part in _split(text or ""):
        match = re.match(r"^\s*([^=!\s]+)\s*(==|=|!=)\s*(.*?)\s*$", part)
        if not match:
            raise SelectorError(f"invalid field selector: {part!r}")
        key, op, value = match.groups()
        out.append(Requirement(key, "!=" if op == "!=" else "=", (value,)))
    return out


def field_value(obj: dict[str, Any], dotted: str) -> str:
    node: Any = obj
    for part in dotted.split("."):
        node = node.get(part) if isinstance(node, dict) else None
    return "" if node is None else str(node)


def matches(obj: dict[str, Any], labels: list[Requirement], fields: list[Requirement]) -> bool:
    own = (obj.get("metadata") or {}).get("labels") or {}
    if not all(r.matches(own) for r in labels):
        return False
    return all(r.matches({r.key: field_value(obj, r.key)}) for r in fields)
