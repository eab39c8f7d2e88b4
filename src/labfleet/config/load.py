"""Read ``labfleet.yaml`` and turn every mistake into one plain sentence.

A bad config must fail *before* anything starts, naming the key path, the
bad value, the line, and — where we can guess — what the user meant.
"""

from __future__ import annotations

import difflib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, get_args, get_origin

import yaml
from pydantic import BaseModel, ValidationError

from labfleet.config.model import FleetConfig


@dataclass(frozen=True)
class ConfigProblem:
    path: str
    message: str
    line: int | None = None

    def __str__(self) -> str:
        where = f" (line {self.line})" if self.line else ""
        return f"{self.path or '<root>'}: {self.message}{where}"


class ConfigError(Exception):
    """Invalid configuration; ``problems`` holds one entry per mistake."""

    def __init__(self, source: str, problems: Sequence[ConfigProblem]):
        self.source = source
        self.problems = list(problems)
        lines = "\n".join(f"  {p}" for p in self.problems)
        super().__init__(f"{source} is not a valid labfleet config:\n{lines}")


def format_path(loc: Sequence[str | int]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


def _model_at(loc: Sequence[str | int]) -> type[BaseModel] | None:
    """The pydantic model class that owns the last element of ``loc``."""
    model: type[BaseModel] = FleetConfig
    for part in loc[:-1]:
        if isinstance(part, int):
            continue
        field = model.model_fields.get(part)
        if field is None:
            return None
        inner = _unwrap_model(field.annotation)
        if inner is None:
            return None
        model = inner
    return model


def _unwrap_model(annotation: Any) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    if get_origin(annotation) is not None or get_args(annotation):
        for arg in get_args(annotation):
            found = _unwrap_model(arg)
            if found is not None:
                return found
    return None


def _message(error: Any) -> str:
    kind = error["type"]
    loc = error["loc"]
    value = error.get("input")
    if kind == "extra_forbidden":
        model = _model_at(loc)
        known = sorted(model.model_fields) if model else []
        close = difflib.get_close_matches(str(loc[-1]), known, n=1, cutoff=0.6)
        hint = (
            f"; did you mean {close[0]!r}?"
            if close
            else (f"; known keys: {', '.join(known)}" if known else "")
        )
        return f"unknown key{hint}"
    msg: str = error["msg"]
    for prefix in ("Value error, ", "Assertion failed, "):
        if msg.startswith(prefix):
            return msg[len(prefix) :]
    if kind == "literal_error":
        expected = [
            str(a)
            for a in (error.get("ctx", {}).get("expected", "") or "").split("'")
            if a.strip(" ,or")
        ]
        close = difflib.get_close_matches(str(value), expected, n=1, cutoff=0.4)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        return f"{value!r} is not allowed: {msg}{hint}"
    if kind == "missing":
        return "required key is missing"
    shown = repr(value)
    if len(shown) > 80:
        shown = shown[:77] + "..."
    return f"{shown} is invalid: {msg}"


def _line_index(text: str) -> dict[tuple[str | int, ...], int]:
    """Map key paths to 1-based line numbers (best effort, for messages)."""
    index: dict[tuple[str | int, ...], int] = {}
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError:
        return index

    def walk(node: yaml.Node, path: tuple[str | int, ...]) -> None:
        if isinstance(node, yaml.MappingNode):
            for key, val in node.value:
                sub = (*path, str(key.value))
                index[sub] = key.start_mark.line + 1
                walk(val, sub)
        elif isinstance(node, yaml.SequenceNode):
            for i, item in enumerate(node.value):
                index[(*path, i)] = item.start_mark.line + 1
                walk(item, (*path, i))

    if root is not None:
        walk(root, ())
    return index


def parse_config(data: Any, source: str = "<config>", text: str = "") -> FleetConfig:
    """Validate already-parsed YAML data; raise :class:`ConfigError` with every problem."""
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(source, [ConfigProblem("", "the file must be a mapping of keys")])
    try:
        return FleetConfig.model_validate(data)
    except ValidationError as exc:
        lines = _line_index(text) if text else {}
        problems = []
        for err in exc.errors():
            loc = tuple(err["loc"])
            problems.append(ConfigProblem(format_path(loc), _message(err), lines.get(loc)))
        raise ConfigError(source, problems) from None


def parse_text(text: str, source: str = "<config>") -> FleetConfig:
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else None
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError(source, [ConfigProblem("", f"not valid YAML: {problem}", line)]) from None
    return parse_config(data, source, text)


def load_config(path: str | Path | None) -> FleetConfig:
    """Load ``path``, or the embedded defaults when ``path`` is None."""
    if path is None:
        return FleetConfig()
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(str(p), [ConfigProblem("", "file not found")]) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(str(p), [ConfigProblem("", f"cannot read: {exc}")]) from None
    return parse_text(text, str(p))
