"""The transport layer's dependency rules, read from its source: it imports nothing from
the domain, its modules import each other without a cycle, and no import hides inside a
function (only ``AppConfig.ready()`` may, to register what must wait for the app registry)."""

from __future__ import annotations

import ast
from pathlib import Path

from ..conftest import ROOT

PACKAGE = ROOT / "channels"
#: The channel admin still lives here until it moves to the domain's admin
#: (campaigns/admin/channels.py), which it needs: its windows inline and its test-send mixin.
DOMAIN_IMPORTS_ALLOWED = {"channels/admin.py"}


def modules() -> dict[str, Path]:
    """Dotted module name → path, for every module of the package but its migrations."""
    found = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        relative = path.relative_to(ROOT)
        if "migrations" in relative.parts:
            continue
        parts = list(relative.with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        found[".".join(parts)] = path
    return found


def imported(name: str, path: Path, node: ast.Import | ast.ImportFrom) -> list[str]:
    """The absolute names an import statement of module ``name`` brings in."""
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    package = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
    base = package[: len(package) - node.level + 1] if node.level else []
    prefix = ".".join([*base, *([node.module] if node.module else [])])
    return [prefix, *(f"{prefix}.{alias.name}" for alias in node.names)]


def function_imports(tree: ast.Module) -> list[tuple[int, str]]:
    """Imports inside functions, but those of an AppConfig's ``ready()``."""
    found = []
    for parent in ast.walk(tree):
        if not isinstance(parent, ast.FunctionDef | ast.AsyncFunctionDef):
            continue
        for node in ast.walk(parent):
            if isinstance(node, ast.Import | ast.ImportFrom) and parent.name != "ready":
                found.append((node.lineno, parent.name))
    return found


def test_channels_imports_nothing_from_the_domain():
    offenders = {}
    for name, path in modules().items():
        tree = ast.parse(path.read_text(), filename=str(path))
        relative = path.relative_to(ROOT).as_posix()
        for node in ast.walk(tree):
            if isinstance(node, ast.Import | ast.ImportFrom):
                bad = [n for n in imported(name, path, node) if n.split(".")[0] == "campaigns"]
                if bad and relative not in DOMAIN_IMPORTS_ALLOWED:
                    offenders.setdefault(relative, []).append((node.lineno, bad[0]))
    assert offenders == {}


def test_no_import_hides_in_a_function():
    offenders = {
        path.relative_to(ROOT).as_posix(): found
        for path in modules().values()
        if (found := function_imports(ast.parse(path.read_text())))
    }
    assert offenders == {}


def test_the_modules_of_channels_import_each_other_without_a_cycle():
    names = modules()
    graph: dict[str, set[str]] = {}
    for name, path in names.items():
        tree = ast.parse(path.read_text())
        edges = set()
        for node in tree.body:  # module level: what runs when the module is imported
            if isinstance(node, ast.Import | ast.ImportFrom):
                edges |= {n for n in imported(name, path, node) if n in names and n != name}
            if isinstance(node, ast.If):  # TYPE_CHECKING blocks do not run
                continue
        graph[name] = edges
    cycles = []
    state: dict[str, str] = {}

    def visit(node: str, trail: list[str]) -> None:
        state[node] = "open"
        for target in sorted(graph[node]):
            if state.get(target) == "open":
                cycles.append([*trail[trail.index(target) :], target])
            elif target not in state:
                visit(target, [*trail, target])
        state[node] = "done"

    for name in sorted(graph):
        if name not in state:
            visit(name, [name])
    assert cycles == []


def test_the_checks_find_what_they_look_for(tmp_path):
    """The reader above sees an import hidden in a function and a cycle's edges."""
    tree = ast.parse(
        "import os\n"
        "def f():\n"
        "    from .registry import backend_class\n"
        "class Apps:\n"
        "    def ready(self):\n"
        "        from . import checks\n"
    )
    assert function_imports(tree) == [(3, "f")]
    node = tree.body[1].body[0]
    assert imported("channels.models", PACKAGE / "models.py", node) == [
        "channels.registry",
        "channels.registry.backend_class",
    ]
