"""The shape of the code, read from the source with ``ast`` (nothing is imported).

What counts as an import: every ``import`` / ``from ... import`` statement anywhere in a
module (at module level, inside functions, under ``if TYPE_CHECKING:``), resolved to the
deepest flowrun module it names (``from flowrun.x import y`` is an edge to ``flowrun.x.y``
when that is a module, else to ``flowrun.x``). The package ``__init__`` files a dotted import
passes through are not counted as edges: they are facades (they load their names lazily or
re-export their own submodules). Modules that ``flowrun/__init__.py`` loads by name through
``import_module`` are not edges either: they are the public API, resolved on first use.

The rules (see docs/architecture.md):
- no import cycle between flowrun modules;
- each room (a subpackage, or a top-level module) imports only the rooms its docstring
  allows, in a line ``May import: ``a``, ``b.c``.`` (a room, or one module of it);
- ``openai`` is imported only by ``flowrun/provider/client.py``, ``click`` only under ``cli/``;
- no module is over 500 lines.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import networkx as nx
import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "flowrun"
MAX_LINES = 500
OPENAI_MODULE = "flowrun.provider.client"


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


MODULES: dict[str, Path] = {_module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}
TREES: dict[str, ast.Module] = {m: ast.parse(p.read_text(), str(p)) for m, p in MODULES.items()}


def _deepest(name: str) -> str | None:
    while name and name not in MODULES:
        name = name.rpartition(".")[0]
    return name or None


def _imported_names(module: str) -> list[tuple[str, int]]:
    """Every dotted name ``module`` imports (absolute), with its line."""
    path = MODULES[module]
    names: list[tuple[str, int]] = []
    for node in ast.walk(TREES[module]):
        if isinstance(node, ast.Import):
            names += [(alias.name, node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                package = (
                    module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]
                )
                package = package[: len(package) - node.level + 1]
                base = ".".join(package + ([node.module] if node.module else []))
            names.append((base, node.lineno))
            names += [(f"{base}.{alias.name}", node.lineno) for alias in node.names]
    return names


def _edges() -> dict[str, dict[str, int]]:
    """module -> {flowrun module it imports: line}."""
    edges: dict[str, dict[str, int]] = {}
    for module in MODULES:
        targets: dict[str, int] = {}
        for name, line in _imported_names(module):
            if name == "flowrun" or name.startswith("flowrun."):
                target = _deepest(name)
                if target and target != module:
                    targets.setdefault(target, line)
        edges[module] = targets
    return edges


EDGES = _edges()


def _room(module: str) -> str:
    """``flowrun.engine.steps.chat`` -> ``engine``; ``flowrun.api`` -> ``api``."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "flowrun"


def _allowed(room: str) -> list[str] | None:
    """What a room's docstring allows it to import (``May import: ...``), None if it says nothing."""
    path = MODULES[f"flowrun.{room}"] if room != "flowrun" else MODULES["flowrun"]
    doc = ast.get_docstring(ast.parse(path.read_text())) or ""
    match = re.search(r"May import: (.*?)(?:\.\s|\.$|;)", doc, re.S)
    if match is None:
        return None
    text = match.group(1)
    if text.strip() == "nothing in flowrun":
        return []
    return re.findall(r"``([a-z_.]+)``", text)


ROOMS = sorted({_room(m) for m in MODULES if m != "flowrun"})


def test_no_import_cycles() -> None:
    graph = nx.DiGraph([(m, t) for m, targets in EDGES.items() for t in targets])
    cycles = sorted(" -> ".join([*c, c[0]]) for c in nx.simple_cycles(graph))
    assert cycles == []


def test_the_scan_sees_function_level_and_type_checking_imports() -> None:
    # A guard on the scanner itself: these imports exist only inside functions / TYPE_CHECKING.
    assert "flowrun.engine.steps.chat" in EDGES["flowrun.engine.steps"]
    tree_imports = {n for n, _ in _imported_names("flowrun.cli.app")}
    assert "click" in tree_imports


@pytest.mark.parametrize("room", ROOMS)
def test_each_room_states_what_it_may_import(room: str) -> None:
    assert _allowed(room) is not None, f"flowrun/{room}: no 'May import: ...' line in its docstring"


@pytest.mark.parametrize("room", ROOMS)
def test_each_room_imports_only_what_its_docstring_allows(room: str) -> None:
    allowed = _allowed(room) or []
    wrong = []
    for module, targets in EDGES.items():
        if _room(module) != room:
            continue
        for target, line in targets.items():
            if _room(target) == room:
                continue
            name = target.removeprefix("flowrun.") if target != "flowrun" else "flowrun"
            if not any(name == a or name.startswith(a + ".") for a in allowed):
                wrong.append(f"{MODULES[module].relative_to(ROOT)}:{line} imports {target}")
    assert wrong == [], f"{room} may import only {allowed}"


def _third_party_importers(package: str) -> set[str]:
    return {
        m
        for m in MODULES
        if any(name == package or name.startswith(package + ".") for name, _ in _imported_names(m))
    }


def test_openai_is_imported_by_the_provider_client_only() -> None:
    assert _third_party_importers("openai") == {OPENAI_MODULE}


def test_click_is_imported_under_cli_only() -> None:
    outside = {m for m in _third_party_importers("click") if _room(m) != "cli"}
    assert outside == set()


def test_no_module_is_over_500_lines() -> None:
    long = {
        str(p.relative_to(ROOT)): n
        for p in MODULES.values()
        if (n := len(p.read_text().splitlines())) > MAX_LINES
    }
    assert long == {}


def test_the_architecture_map_names_every_room() -> None:
    text = (ROOT / "docs" / "architecture.md").read_text()
    missing = [r for r in ROOMS if not re.search(rf"^  {re.escape(r)}(/|\.py)\s", text, re.M)]
    assert missing == []


def test_the_architecture_map_names_every_module() -> None:
    text = (ROOT / "docs" / "architecture.md").read_text()
    words = set(re.findall(r"[a-z_]+", text))
    missing = sorted(m for m in MODULES if m.count(".") >= 2 and m.rpartition(".")[2] not in words)
    assert missing == []


def _exception_names() -> set[str]:
    import builtins

    names = {
        n for n, v in vars(builtins).items() if isinstance(v, type) and issubclass(v, BaseException)
    }
    return names | {n.name for n in TREES["flowrun.errors"].body if isinstance(n, ast.ClassDef)}


def test_every_exception_class_lives_in_errors_py() -> None:
    exceptions = _exception_names()
    elsewhere = []
    for module, tree in TREES.items():
        if module == "flowrun.errors" or _room(module) == "testing":
            continue
        for node in ast.walk(tree):
            if isinstance(node, ast.ClassDef):
                bases = {
                    b.id if isinstance(b, ast.Name) else getattr(b, "attr", "") for b in node.bases
                }
                if bases & exceptions:
                    elsewhere.append(f"{module}.{node.name}")
    assert elsewhere == []


def test_the_errors_docstring_draws_every_exception() -> None:
    doc = ast.get_docstring(TREES["flowrun.errors"]) or ""
    classes = [
        n.name
        for n in TREES["flowrun.errors"].body
        if isinstance(n, ast.ClassDef) and n.name != "Problem"
    ]
    assert [c for c in classes if not re.search(rf"\b{c}\b", doc)] == []


def test_sqlite_connections_are_opened_by_the_store_helper_only() -> None:
    opening = sorted(
        f"{MODULES[m].relative_to(ROOT)}:{node.lineno}"
        for m, tree in TREES.items()
        for node in ast.walk(tree)
        if isinstance(node, ast.Attribute)
        and node.attr == "connect"
        and isinstance(node.value, ast.Name)
        and node.value.id == "sqlite3"
    )
    assert [o for o in opening if not o.startswith("flowrun/store/sqlite.py:")] == []
    assert opening != []  # the helper itself opens them
