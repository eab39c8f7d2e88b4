"""Plain-text rendering of the engine's results and progress events.

Kept apart from the engine so that the CLI (or a test, or a future JSON
output) decides how results look; nothing in here talks to a cluster.
"""

from __future__ import annotations

import difflib
import json
from typing import Any

from labfleet.kube.apply.diff import FieldChange
from labfleet.kube.apply.results import (
    Action,
    Applied,
    ApplyResult,
    Change,
    Deleted,
    DestroyResult,
    Event,
    FleetStatus,
    Notice,
    Plan,
    Pruned,
    RolloutState,
    Waiting,
)

_SYMBOL = {
    Action.CREATE: "+",
    Action.UPDATE: "~",
    Action.UNCHANGED: "=",
    Action.PRUNE: "-",
    Action.KEEP: "!",
    Action.CONFLICT: "x",
}
_MAX_VALUE = 80


def _value(value: Any) -> str:
    text = json.dumps(value, sort_keys=True) if not isinstance(value, str) else value
    return text if len(text) <= _MAX_VALUE else text[: _MAX_VALUE - 3] + "..."


_MAX_TEXT_LINES = 20


def _text_diff(change: FieldChange) -> list[str]:
    """A multi-line string (a config file in a ConfigMap) as a line diff."""
    before = str(change.before or "").splitlines()
    after = str(change.after or "").splitlines()
    body = [
        line
        for line in difflib.unified_diff(before, after, lineterm="", n=0)
        if not line.startswith(("---", "+++", "@@"))
    ]
    if len(body) > _MAX_TEXT_LINES:
        body = [*body[:_MAX_TEXT_LINES], f"... {len(body) - _MAX_TEXT_LINES} more lines"]
    return [f"      ~ {change.path}:", *(f"          {line}" for line in body)]


def field_lines(change: FieldChange) -> list[str]:
    texts = [v for v in (change.before, change.after) if isinstance(v, str)]
    if (
        texts
        and any("\n" in t for t in texts)
        and all(v is None or isinstance(v, str) for v in (change.before, change.after))
    ):
        return _text_diff(change)
    return [field_line(change)]


def field_line(change: FieldChange) -> str:
    if change.before is None:
        return f"      + {change.path}: {_value(change.after)}"
    if change.after is None:
        return f"      - {change.path}: {_value(change.before)}"
    return f"      ~ {change.path}: {_value(change.before)} -> {_value(change.after)}"


def change_lines(change: Change, *, verbose: bool = False) -> list[str]:
    if change.action is Action.UNCHANGED and not verbose:
        return []
    line = f"  {_SYMBOL[change.action]} {change.ref} ({change.action.value})"
    if change.reason and change.action is not Action.CONFLICT:
        line += f": {change.reason}"
    lines = [line, *(text for f in change.fields for text in field_lines(f))]
    if change.action is Action.CONFLICT:
        lines += [f"      {part}" for part in change.reason.splitlines()]
    return lines


def plan_text(plan: Plan, *, verbose: bool = False) -> str:
    counts = {a: len(plan.of(a)) for a in Action}
    header = (
        f"plan for {plan.target.instance} in namespace {plan.target.namespace}: "
        f"{counts[Action.CREATE]} to create, {counts[Action.UPDATE]} to update, "
        f"{counts[Action.PRUNE]} to prune, {counts[Action.UNCHANGED]} unchanged"
    )
    if counts[Action.CONFLICT]:
        header += f", {counts[Action.CONFLICT]} in conflict"
    lines = [header]
    for change in plan.changes:
        lines += change_lines(change, verbose=verbose)
    if not plan.has_changes:
        lines.append("  no changes")
    lines += [f"warning: {w}" for w in plan.warnings]
    return "\n".join(lines)


def rollout_line(state: RolloutState) -> str:
    name = f"{state.ref.kind.lower()}/{state.ref.name}"
    if state.done:
        return f"{name}: {state.ready}/{state.desired} ready ({state.elapsed:.0f}s)"
    line = f"waiting for {name}: {state.ready}/{state.desired} ready ({state.elapsed:.0f}s)"
    return f"{line} - {state.message}" if state.message else line


def event_line(event: Event) -> str | None:
    """One line per progress event (None: nothing worth a line)."""
    if isinstance(event, Applied):
        action = event.change.action
        verb = {Action.CREATE: "created", Action.UPDATE: "configured"}.get(action, "unchanged")
        return f"{event.change.ref}: {verb}"
    if isinstance(event, Pruned):
        return f"{event.ref}: pruned"
    if isinstance(event, Deleted):
        return f"{event.ref}: deleted"
    if isinstance(event, Waiting):
        return rollout_line(event.state)
    if isinstance(event, Notice):
        return f"warning: {event.text}"
    return None


def apply_summary(result: ApplyResult) -> str:
    created, updated = len(result.of(Action.CREATE)), len(result.of(Action.UPDATE))
    unchanged = len(result.of(Action.UNCHANGED))
    lines = [
        f"applied {result.target.instance} in namespace {result.target.namespace}: "
        f"{created} created, {updated} configured, {unchanged} unchanged, "
        f"{len(result.pruned)} pruned"
    ]
    for kept in result.kept:
        lines.append(f"  kept {kept.ref}: {kept.reason}")
    lines += [f"warning: {w}" for w in result.warnings]
    if result.rollout is not None:
        if result.rollout.timed_out:
            lines.append("rollout did not finish in time:")
            lines += [f"  {rollout_line(s)}" for s in result.rollout.states if not s.done]
        else:
            lines.append("rollout complete")
    if result.endpoint is not None:
        where = result.endpoint.url or "(no address yet)"
        lines.append(f"reach the hub at {where}")
        lines.append(f"  {result.endpoint.hint}")
    return "\n".join(lines)


def destroy_summary(result: DestroyResult) -> str:
    lines = [
        f"destroyed {result.target.instance} in namespace {result.target.namespace}: "
        f"{len(result.deleted)} deleted, {len(result.kept)} kept"
    ]
    lines += [f"  kept {k.ref}: {k.reason}" for k in result.kept]
    return "\n".join(lines)


def status_text(status: FleetStatus) -> str:
    target = status.target
    if not status.installed:
        return f"{target.instance} is not installed in namespace {target.namespace}"
    lines = [f"{target.instance} in namespace {target.namespace}"]
    for w in status.workloads:
        label = w.component or w.ref.kind.lower()
        note = f" - {w.message}" if w.message and w.ready < w.desired else ""
        lines.append(
            f"  {label:<16} {w.ref.kind.lower()}/{w.ref.name}: {w.ready}/{w.desired} ready{note}"
        )
    lines.append(f"  users' servers: {len(status.user_pods)}")
    for pod in status.user_pods:
        server = f"/{pod.server}" if pod.server else ""
        state = "ready" if pod.ready else pod.phase
        lines.append(
            f"    {pod.user}{server}: {pod.namespace}/{pod.name} {state} {pod.ip or ''}".rstrip()
        )
    if status.volumes:
        lines.append(f"  volumes: {', '.join(status.volumes)}")
    if status.endpoint is not None:
        where = status.endpoint.url or "(no address yet)"
        lines.append(f"  reach the hub at {where}: {status.endpoint.hint}")
    return "\n".join(lines)
