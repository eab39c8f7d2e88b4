"""The package import table in docs/architecture.md is true of the code.

The table is the contract a newcomer reads; this test reads every ``import`` in
``src/labfleet`` (function-level and ``TYPE_CHECKING`` imports included, since
they are dependencies all the same) and fails when a package imports one its row
does not list, or when the packages import each other in a circle.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SRC = ROOT / "src" / "labfleet"
DOC = ROOT / "docs" / "architecture.md"

ROW = re.compile(r"^\|\s*`([a-z_]+)`\s*\|[^|]*\|([^|]*)\|\s*$")


def _allowed() -> dict[str, set[str] | None]:
    """Package → the packages its row lists (None: it may import anything)."""
    table: dict[str, set[str] | None] = {}
    for line in DOC.read_text().splitlines():
        m = ROW.match(line)
        if not m:
            continue
        name, column = m.group(1), m.group(2).strip()
        if column.startswith("everything"):
            table[name] = None
            continue
        if column.startswith("nothing"):
            table[name] = set()
            continue
        table[name] = {item.strip().split(".")[0] for item in column.split(",") if item.strip()}
    return table


def _package_of(path: Path) -> str:
    rel = path.relative_to(SRC)
    return rel.parts[0].removesuffix(".py")


def _imported_packages(path: Path) -> Iterator[tuple[str, int]]:
    tree = ast.parse(path.read_text(), filename=str(path))
    for node in ast.walk(tree):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module]
            if node.module == "labfleet":
                # ``from labfleet import naming`` names a module; ``__version__`` is the façade's.
                names = [
                    f"labfleet.{alias.name}"
                    for alias in node.names
                    if (SRC / alias.name).is_dir() or (SRC / f"{alias.name}.py").is_file()
                ]
        for name in names:
            parts = name.split(".")
            if parts[0] == "labfleet" and len(parts) > 1:
                yield parts[1], node.lineno


def _edges() -> dict[tuple[str, str], list[str]]:
    edges: dict[tuple[str, str], list[str]] = {}
    for path in sorted(SRC.rglob("*.py")):
        if path.name == "__init__.py" and path.parent == SRC:
            continue
        source = _package_of(path)
        for target, line in _imported_packages(path):
            if target != source:
                edges.setdefault((source, target), []).append(f"{path.relative_to(ROOT)}:{line}")
    return edges


def test_every_package_has_a_row() -> None:
    packages = {_package_of(p) for p in SRC.rglob("*.py") if p != SRC / "__init__.py"}
    missing = sorted(packages - set(_allowed()))
    assert not missing, f"docs/architecture.md's package table has no row for {missing}"


def test_imports_follow_the_table() -> None:
    allowed = _allowed()
    wrong = []
    for (source, target), where in sorted(_edges().items()):
        permitted = allowed.get(source, set())
        if permitted is not None and target not in permitted:
            wrong.append(f"{source} imports {target} ({', '.join(where)})")
    assert not wrong, "imports the architecture table does not list:\n" + "\n".join(wrong)


def test_nothing_imports_the_cli() -> None:
    users = sorted({s for (s, t) in _edges() if t == "cli"})
    assert not users, f"cli is the top floor, but {users} import it"


def test_no_circles_between_packages() -> None:
    graph: dict[str, set[str]] = {}
    for source, target in _edges():
        graph.setdefault(source, set()).add(target)
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return [*stack[stack.index(nxt) :], nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            raise AssertionError("packages import each other: " + " -> ".join(cycle))
