"""The proxy's structure: no import cycles, an explicit connection state machine,
and metrics that print counters as integers."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PROXY = Path(__file__).resolve().parents[2] / "src" / "labfleet" / "proxy"


def _imports(path: Path) -> set[str]:
    """Every labfleet.proxy module imported anywhere in ``path`` (lazy and TYPE_CHECKING too)."""
    tree = ast.parse(path.read_text())
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module:
            if node.module == "labfleet.proxy":
                found.update(f"labfleet.proxy.{a.name}" for a in node.names)
            elif node.module.startswith("labfleet.proxy."):
                found.add(node.module)
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.startswith("labfleet.proxy."))
    return found


def test_proxy_modules_import_each_other_without_cycles() -> None:
    graph = {
        f"labfleet.proxy.{p.stem}": _imports(p) for p in PROXY.glob("*.py") if p.stem != "__init__"
    }
    state: dict[str, int] = {}
    cycles: list[list[str]] = []

    def visit(node: str, stack: list[str]) -> None:
        state[node] = 1
        for dep in sorted(graph.get(node, ())):
            if state.get(dep) == 1:
                cycles.append([*stack[stack.index(dep) :], dep])
            elif dep not in state:
                visit(dep, [*stack, dep])
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node, [node])
    assert cycles == []


def test_counters_print_as_integers_and_parse_back() -> None:
    from prometheus_client.parser import text_string_to_metric_families

    from labfleet.proxy.metrics import Counters, render

    c = Counters()
    c.requests = 10_000_001
    c.responses[2] = 123_456_789_012
    text = render(c, route_count=3)
    assert not any(line.endswith(" 1e+07") for line in text.splitlines())  # `{value:g}`
    values = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for f in text_string_to_metric_families(text)
        for s in f.samples
    }
    assert values[("labfleet_proxy_requests_total", ())] == 10_000_001
    assert values[("labfleet_proxy_responses_total", (("code", "2xx"),))] == 123_456_789_012
    assert values[("labfleet_proxy_routes", ())] == 3


def test_error_kinds_are_a_fixed_set() -> None:
    from labfleet.proxy.metrics import ERROR_KINDS, Counters

    c = Counters()
    with pytest.raises(KeyError):
        c.error("route:/user/alice")
    for kind in ERROR_KINDS:
        c.error(kind)


# -- the client connection state machine ------------------------------------------


def test_every_transition_is_in_the_table_and_illegal_ones_raise() -> None:
    from labfleet.proxy.lifecycle import (
        TRANSITIONS,
        ClientState,
        Event,
        IllegalTransition,
        Lifecycle,
    )

    reachable = {ClientState.IDLE}
    frontier = [ClientState.IDLE]
    while frontier:
        s = frontier.pop()
        for (src, _), dst in TRANSITIONS.items():
            if src is s and dst not in reachable:
                reachable.add(dst)
                frontier.append(dst)
    assert reachable == set(ClientState)  # no dead states
    for state in ClientState:
        for event in Event:
            lc = Lifecycle()
            lc.state = state
            if (state, event) in TRANSITIONS:
                lc.fire(event)
                assert lc.state is TRANSITIONS[(state, event)]
            elif event is not Event.CLOSE:
                with pytest.raises(IllegalTransition):
                    lc.fire(event)
    lc = Lifecycle()
    for event in (Event.HEAD, Event.ATTACHED_WITH_BODY, Event.BODY_DONE, Event.RESPONSE_DONE):
        lc.fire(event)
    assert lc.state is ClientState.IDLE
    lc.fire(Event.CLOSE)
    assert lc.state is ClientState.CLOSED
    lc.fire(Event.CLOSE)  # closing twice is harmless
    with pytest.raises(IllegalTransition):
        lc.fire(Event.HEAD)
