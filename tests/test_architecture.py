"""The shape of the house (DESIGN.md): no import cycle among murmur's modules, SQL only in store/, no
module over 500 lines, and the lower layers never reach up to the CLI."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from tests.conftest import REPO

# Folder in the repository -> its import name once installed (pyproject's package-dir).
PACKAGES = {"murmur": "murmur", "config": "murmur.config", "crawler": "murmur.crawler",
            "sentiment": "murmur.sentiment", "scheduler": "murmur.scheduler", "store": "murmur.store",
            "reports": "murmur.reports", "web": "murmur.web"}
MAX_LINES = 500
# What SQL statements look like in a string; store/ and its migrations are where they belong.
SQL = re.compile(r"\b(SELECT\s.+\sFROM\s|INSERT\s+INTO\s|UPDATE\s+\w+\s+SET\s|DELETE\s+FROM\s"
                 r"|CREATE\s+(TABLE|INDEX|VIEW)\s|pg_try_advisory|pg_advisory)", re.IGNORECASE | re.DOTALL)


def modules() -> dict[str, Path]:
    """Import name -> file, for every module murmur installs."""
    found = {}
    for folder, name in PACKAGES.items():
        for path in sorted((REPO / folder).rglob("*.py")):
            parts = path.relative_to(REPO / folder).with_suffix("").parts
            if parts[-1] == "__init__":
                parts = parts[:-1]
            found[".".join((name, *parts))] = path
    return found


def _type_checking_only(node: ast.AST) -> bool:
    return isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)


def imports(path: Path, module: str, known: set[str]) -> set[str]:
    """The murmur modules `module` imports anywhere in its body (function-level imports too: a cycle
    hidden inside a function is still a cycle), except under `if TYPE_CHECKING:`."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    is_package = path.name == "__init__.py"
    out: set[str] = set()

    def visit(node: ast.AST) -> None:
        if _type_checking_only(node):
            return
        if isinstance(node, ast.Import):
            out.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = module.split(".")
                anchor = anchor if is_package else anchor[:-1]
                anchor = anchor[: len(anchor) - (node.level - 1)]
                base = ".".join([*anchor, base] if base else anchor)
            out.add(base)
            out.update(f"{base}.{alias.name}" for alias in node.names)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(tree)
    return {name for name in out if name in known and name != module}


def graph() -> dict[str, set[str]]:
    found = modules()
    known = set(found)
    return {name: imports(path, name, known) for name, path in found.items()}


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def strongconnect(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in edges.get(v, ()):
            if w not in index:
                strongconnect(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(edges):
        if v not in index:
            strongconnect(v)
    return found


def _without_packages(edges: dict[str, set[str]]) -> dict[str, set[str]]:
    # `from murmur.crawler.parsers import x` names the package; a package's __init__ importing its own
    # modules is how packages work, not a cycle between concerns.
    return {m: {d for d in deps if not m.startswith(d + ".")} for m, deps in edges.items()}


def test_no_import_cycle_among_murmur_modules() -> None:
    found = cycles(_without_packages(graph()))
    assert not found, "import cycles: " + "; ".join(" <-> ".join(c) for c in found)


def test_the_cycle_check_finds_a_cycle() -> None:
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_nothing_imports_the_command_line() -> None:
    edges = graph()
    users = sorted(m for m, deps in edges.items() if deps & {"murmur.cli", "murmur.cli_model"}
                   and m not in ("murmur.cli", "murmur.cli_model", "murmur.__main__"))
    assert not users, f"these modules import the CLI: {users}"


@pytest.mark.parametrize("name", sorted(modules()))
def test_no_module_is_over_500_lines(name: str) -> None:
    lines = modules()[name].read_text(encoding="utf-8").count("\n")
    assert lines <= MAX_LINES, f"{name} has {lines} lines: it is probably two concerns"


def test_sql_lives_only_in_store() -> None:
    offenders = []
    for name, path in modules().items():
        if name.startswith("murmur.store"):
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and SQL.search(node.value):
                offenders.append(f"{path.relative_to(REPO)}:{node.lineno}")
    assert not offenders, f"SQL outside store/: {offenders}"


def test_every_package_is_listed_for_installation() -> None:
    import tomllib

    listed = set(tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["tool"]["setuptools"]["packages"])
    found = {name for name, path in modules().items() if path.name == "__init__.py"}
    assert found == listed, f"pyproject.toml's packages list misses {sorted(found - listed)}"


def test_the_dashboard_sits_beside_the_scheduler() -> None:
    """web/ reads reports/ and store/ (and murmur's search and topics); only the CLI and the scheduler serve it,
    and it reaches neither them nor the application layer (the CLI hands it a searcher)."""
    edges = graph()
    users = sorted(m for m, deps in edges.items() if not m.startswith("murmur.web")
                   and any(d.startswith("murmur.web") for d in deps)
                   and not (m == "murmur.cli_web" or m.startswith("murmur.scheduler")))
    assert not users, f"these modules import the dashboard: {users}"
    reach = sorted(d for m, deps in edges.items() if m.startswith("murmur.web") for d in deps
                   if d.startswith(("murmur.scheduler", "murmur.cli", "murmur.app")))
    assert not reach, f"the dashboard imports {reach}"
