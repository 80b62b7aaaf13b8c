"""The layout's rules, checked by reading the code (see README "Code layout"):

1. ``channels`` imports nothing from ``campaigns``;
2. no import cycle among the project's modules, and no import inside a function (the way a
   cycle is hidden) except in ``AppConfig.ready()``;
3. only ``campaigns/outbox/transitions.py`` writes a message's status;
4. only ``campaigns/outbox/queueing.py`` enqueues RQ jobs.

Each check also runs against a small bad example, so it is known to find what it looks for.
"""

from __future__ import annotations

import ast
import re
from collections import defaultdict
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("campaigns", "channels", "notifier_site")


def modules() -> dict[str, Path]:
    found = {}
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            relative = path.relative_to(ROOT)
            if "migrations" in relative.parts:
                continue
            parts = list(relative.with_suffix("").parts)
            if parts[-1] == "__init__":
                parts = parts[:-1]
            found[".".join(parts)] = path
    return found


def resolve(module: str, node: ast.ImportFrom, *, is_package: bool) -> str:
    """The absolute module an ``ImportFrom`` names (relative imports resolved)."""
    if not node.level:
        return node.module or ""
    base = module.split(".")
    if not is_package:
        base = base[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join([*base, node.module] if node.module else base)


def _type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def imports(module: str, source: str, *, is_package: bool) -> list[tuple[str, int, bool]]:
    """(imported module, line, at module level) for each import; names imported from a
    package that are its submodules count as imports of those submodules. Imports under
    ``if TYPE_CHECKING:`` are left out (they never run)."""
    tree = ast.parse(source)
    skipped: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and _type_checking(node):
            skipped.update(id(child) for child in ast.walk(node))
    top_level = {id(node) for node in tree.body}
    for node in tree.body:  # imports directly under a module-level if/try are module level
        if isinstance(node, ast.If | ast.Try):
            top_level.update(id(child) for child in ast.walk(node))
    found = []
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        at_top = id(node) in top_level
        if isinstance(node, ast.Import):
            found.extend((alias.name, node.lineno, at_top) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            target = resolve(module, node, is_package=is_package)
            found.append((target, node.lineno, at_top))
            found.extend((f"{target}.{alias.name}", node.lineno, at_top) for alias in node.names)
    return found


def graph() -> dict[str, set[str]]:
    known = modules()
    edges: dict[str, set[str]] = defaultdict(set)
    for module, path in known.items():
        for target, _, at_top in imports(
            module, path.read_text(), is_package=path.name == "__init__.py"
        ):
            if at_top and target in known and target != module:
                edges[module].add(target)
    return edges


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = [0]

    def visit(node: str) -> None:
        index[node] = low[node] = counter[0]
        counter[0] += 1
        stack.append(node)
        on_stack.add(node)
        for target in sorted(edges.get(node, ())):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(set(edges) | {t for targets in edges.values() for t in targets}):
        if node not in index:
            visit(node)
    return found


# --- 1. channels knows nothing of campaigns ------------------------------------------------------


def campaigns_imports_in(module: str, source: str, *, is_package: bool = False) -> list[str]:
    return [
        f"line {line}: {target}"
        for target, line, _ in imports(module, source, is_package=is_package)
        if target == "campaigns" or target.startswith("campaigns.")
    ]


def test_channels_imports_nothing_from_campaigns():
    offenders = {
        module: found
        for module, path in modules().items()
        if module.startswith("channels")
        and (found := campaigns_imports_in(module, path.read_text()))
    }
    assert offenders == {}


def test_the_channels_check_finds_an_import_of_campaigns():
    source = "def f():\n    from campaigns.conf import app_settings\n"
    assert campaigns_imports_in("channels.backends.x", source) == [
        "line 2: campaigns.conf",
        "line 2: campaigns.conf.app_settings",
    ]
    assert campaigns_imports_in("campaigns.outbox.x", "from ..conf import app_settings\n") == [
        "line 1: campaigns.conf",
        "line 1: campaigns.conf.app_settings",
    ]


# --- 2. no cycles, no imports hidden in functions ---------------------------------------------


def test_the_import_graph_has_no_cycle():
    assert cycles(graph()) == []


def test_the_cycle_check_finds_a_cycle():
    edges = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert cycles(edges) == [["a", "b", "c"]]


def function_imports(module: str, source: str) -> list[str]:
    """Imports inside functions, except in an AppConfig's ready() (Django asks for those)."""
    tree = ast.parse(source)
    found = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            continue
        if node.name == "ready" and module.endswith(".apps"):
            continue
        for inner in ast.walk(node):
            if isinstance(inner, ast.Import | ast.ImportFrom):
                names = ", ".join(alias.name for alias in inner.names)
                found.append(f"line {inner.lineno} in {node.name}(): {names}")
    return found


def test_no_imports_inside_functions():
    offenders = {
        module: found
        for module, path in modules().items()
        if (found := function_imports(module, path.read_text()))
    }
    assert offenders == {}


def test_the_function_import_check_finds_one():
    source = "def f():\n    import json\n\nclass A:\n    def ready(self):\n        import os\n"
    assert function_imports("campaigns.views.x", source) == [
        "line 2 in f(): json",
        "line 6 in ready(): os",
    ]
    assert function_imports("campaigns.apps", source) == ["line 2 in f(): json"]


# --- 3. one writer of message states ----------------------------------------------------------

STATE_WRITER = "campaigns/outbox/transitions.py"
#: An UPDATE whose SET names the status column (plainly, quoted, or as column['status']).
SQL_SETS_STATUS = re.compile(
    r"\bUPDATE\s+\S+.*?\bSET\b.*?(\bstatus\b|\[.status.\])\W*\s*=", re.IGNORECASE | re.DOTALL
)


def _mentions_message_state(node: ast.AST) -> bool:
    for inner in ast.walk(node):
        if (
            isinstance(inner, ast.Attribute)
            and isinstance(inner.value, ast.Name)
            and inner.value.id in ("MessageStatus", "S")
        ):
            return True
    return False


def status_writes(source: str) -> list[str]:
    """Places that write a Message's status: ``.update(status=MessageStatus.…)``,
    ``rows_update(Message, …)`` of a "status" field, ``message.status = MessageStatus.…``
    saved, and SQL that sets "status"."""
    tree = ast.parse(source)
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            name = (
                node.func.attr
                if isinstance(node.func, ast.Attribute)
                else getattr(node.func, "id", "")
            )
            for keyword in node.keywords:
                if (
                    keyword.arg == "status"
                    and name in ("update", "update_or_create", "bulk_update")
                    and _mentions_message_state(keyword.value)
                ):
                    found.append(f"line {node.lineno}: .{name}(status=…)")
            if name in ("rows_update", "bulk_update") and any(
                isinstance(c, ast.Constant) and c.value == "status"
                for arg in node.args[1:]
                for c in ast.walk(arg)
            ):
                found.append(f"line {node.lineno}: {name}(…, 'status')")
        elif isinstance(node, ast.Assign) and _mentions_message_state(node.value):
            for target in node.targets:
                if isinstance(target, ast.Attribute) and target.attr == "status":
                    found.append(f"line {node.lineno}: .status = MessageStatus.…")
        elif isinstance(node, ast.Constant | ast.JoinedStr):
            text = node.value if isinstance(node, ast.Constant) else ast.unparse(node)
            if isinstance(text, str) and SQL_SETS_STATUS.search(text):
                found.append(f"line {node.lineno}: SQL that sets status")
    return found


def test_only_the_transitions_service_writes_message_states():
    offenders = {}
    for module, path in modules().items():
        relative = path.relative_to(ROOT).as_posix()
        if relative == STATE_WRITER or not module.startswith("campaigns"):
            continue
        if relative.startswith("campaigns/bench/"):
            continue  # the floor benchmark: raw SQL on its own rows, to measure the database
        # Campaign and chunk states are not message states: skip their own names.
        found = [
            place
            for place in status_writes(path.read_text())
            if "CampaignStatus" not in place and "ChunkStatus" not in place
        ]
        if found:
            offenders[relative] = found
    assert offenders == {}
    # and the writer does write them, so the check is looking at the right things
    assert status_writes((ROOT / STATE_WRITER).read_text())


def test_the_state_check_finds_writes():
    source = (
        "Message.objects.filter(pk=1).update(status=MessageStatus.SENT)\n"
        "rows_update(Message, rows, ['status', 'sent_at'])\n"
        "Campaign.objects.filter(pk=1).update(status=CampaignStatus.DONE)\n"
        "cursor.execute('UPDATE t SET status = %s')\n"
        "message.status = MessageStatus.SENT\n"
        "cursor.execute(f\"UPDATE {t} SET {column['status']} = %s\")\n"
        '"""Update the row if you must: set its status to sent."""\n'
        "chunk.status = ChunkStatus.DONE\n"
    )
    assert sorted(status_writes(source)) == [
        "line 1: .update(status=…)",
        "line 2: rows_update(…, 'status')",
        "line 4: SQL that sets status",
        "line 5: .status = MessageStatus.…",
        "line 6: SQL that sets status",
    ]


# --- 4. one door to RQ --------------------------------------------------------------------------

QUEUE_DOOR = "campaigns/outbox/queueing.py"
ENQUEUE_CALLS = {"enqueue", "enqueue_many", "enqueue_call", "enqueue_at", "enqueue_in"}


def enqueues(source: str) -> list[str]:
    """Calls that put a job on an RQ queue, and the helpers that prepare one."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and (node.func.attr in ENQUEUE_CALLS or node.func.attr == "prepare_data")
        ):
            found.append(f"line {node.lineno}: .{node.func.attr}()")
    return found


def test_only_queueing_enqueues():
    offenders = {}
    for path in modules().values():
        relative = path.relative_to(ROOT).as_posix()
        if relative != QUEUE_DOOR and (found := enqueues(path.read_text())):
            offenders[relative] = found
    assert offenders == {}
    assert enqueues((ROOT / QUEUE_DOOR).read_text())


def test_the_queue_check_finds_an_enqueue():
    source = "queue.enqueue('campaigns.jobs.dispatch', [1])\nq.enqueue_many(jobs)\n"
    assert enqueues(source) == ["line 1: .enqueue()", "line 2: .enqueue_many()"]


@pytest.mark.parametrize("rule", ["channels", "cycles", "functions", "states", "queue"])
def test_the_readme_states_each_rule(rule):
    readme = (ROOT / "README.md").read_text()
    assert "## Code layout" in readme
    words = {
        "channels": "`channels` imports nothing from `campaigns`",
        "cycles": "no import cycle",
        "functions": "no import inside a function",
        "states": "campaigns/outbox/transitions.py",
        "queue": "campaigns/outbox/queueing.py",
    }
    assert words[rule] in readme
