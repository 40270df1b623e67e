"""The layout of Postroom's modules: no import circle between them, counting imports placed
inside functions too (an import moved into a function to dodge a circle still makes one;
imports under ``if TYPE_CHECKING:`` are for the type checker only and are left out), and no
module of code over 450 lines (data tables excepted, by name)."""

from __future__ import annotations

import ast
from pathlib import Path

import postroom

SRC = Path(postroom.__file__).parent


def _module_name(path: Path) -> str:
    parts = path.relative_to(SRC.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _imports(tree: ast.AST, package: str, modules: set[str]) -> set[str]:
    """The Postroom modules a module's code imports, wherever the import statement is."""
    found: set[str] = set()

    def resolve(name: str) -> None:
        if name in modules:
            found.add(name)

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and _is_type_checking(node):
            for child in node.orelse:
                visit(child)
            return
        if isinstance(node, ast.Import):
            for alias in node.names:
                resolve(alias.name)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")
                anchor = anchor[: len(anchor) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            for alias in node.names:
                submodule = f"{base}.{alias.name}"
                resolve(submodule if submodule in modules else base)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(tree)
    return found


def import_graph() -> dict[str, set[str]]:
    """Every Postroom module and the Postroom modules it imports."""
    paths = {_module_name(p): p for p in SRC.rglob("*.py") if "migrations" not in p.parts}
    modules = set(paths)
    graph: dict[str, set[str]] = {}
    for name, path in paths.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        graph[name] = _imports(ast.parse(path.read_text()), package, modules) - {name}
    return graph


def circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """One circle (as a path that returns to its start) per strongly connected group."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups: list[list[str]] = []

    def connect(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in sorted(graph[node]):
            if target not in index:
                connect(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            group = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                group.append(member)
                if member == node:
                    break
            if len(group) > 1:
                groups.append(sorted(group))

    for node in sorted(graph):
        if node not in index:
            connect(node)
    return groups


def test_the_circle_finder_finds_a_circle_through_a_function_level_import() -> None:
    source = "def later():\n    from postroom.b import x\n"
    graph = {"postroom.a": _imports(ast.parse(source), "postroom", {"postroom.a", "postroom.b"})}
    graph["postroom.b"] = {"postroom.a"}
    assert circles(graph) == [["postroom.a", "postroom.b"]]


def test_no_module_imports_itself_back_through_others() -> None:
    assert circles(import_graph()) == []


MAX_LINES = 450
TABLES = {
    # Data, one entry after another; splitting them would only scatter the entries.
    "postroom/presets/smtp.py": "the providers' SMTP presets",
    "postroom/diagnosis/replies.py": "the rules that read providers' SMTP replies",
}
"""Modules allowed past ``MAX_LINES`` because they are tables of data, not code."""


def long_modules(src: Path, tables: dict[str, str]) -> dict[str, int]:
    """Each module under ``src`` (named from its parent) longer than ``MAX_LINES``, with its
    length in lines, the ``tables`` left out."""
    found: dict[str, int] = {}
    for path in sorted(src.rglob("*.py")):
        name = path.relative_to(src.parent).as_posix()
        lines = len(path.read_text().splitlines())
        if lines > MAX_LINES and name not in tables:
            found[name] = lines
    return found


def test_the_length_check_names_a_long_module_and_passes_a_table(tmp_path: Path) -> None:
    package = tmp_path / "pkg"
    package.mkdir()
    (package / "long.py").write_text("x = 1\n" * (MAX_LINES + 1))
    (package / "table.py").write_text("x = 1\n" * (MAX_LINES + 100))
    (package / "short.py").write_text("x = 1\n" * MAX_LINES)
    found = long_modules(package, {"pkg/table.py": "data"})
    assert found == {"pkg/long.py": MAX_LINES + 1}


def test_no_module_of_code_is_over_450_lines() -> None:
    found = long_modules(SRC, TABLES)
    assert not found, "\n".join(
        f"{name} has {lines} lines, more than {MAX_LINES}: split it into modules by job "
        "(or, for a pure data table, name it in TABLES with the reason)"
        for name, lines in found.items()
    )


def test_every_allowed_table_still_exists() -> None:
    missing = [name for name in TABLES if not (SRC.parent / name).is_file()]
    assert not missing, f"TABLES names modules that are gone: {missing}; remove them"
