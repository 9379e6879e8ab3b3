"""The package reads as the pipeline: no import circles, no private names imported across
modules. Walks flows/ with ast, so an import hidden inside a function counts too (that is
how the last circle hid); imports under ``if TYPE_CHECKING:`` do not run and do not count."""

from __future__ import annotations

import ast
from pathlib import Path

from flows.settings import PACKAGE_ROOT

PACKAGE = PACKAGE_ROOT.name  # "flows"


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE_ROOT.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules() -> dict[str, Path]:
    return {module_name(path): path for path in sorted(PACKAGE_ROOT.rglob("*.py"))}


def _type_checking_only(node: ast.AST) -> bool:
    test = getattr(node, "test", None)
    return isinstance(node, ast.If) and (
        (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING")
        or (isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"))


def runtime_imports(tree: ast.AST) -> list[ast.Import | ast.ImportFrom]:
    found: list[ast.Import | ast.ImportFrom] = []

    def visit(node: ast.AST) -> None:
        if _type_checking_only(node):
            for child in node.orelse:  # the else branch does run
                visit(child)
            return
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            found.append(node)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(tree)
    return found


def resolve(module: str, node: ast.ImportFrom, is_package: bool) -> str:
    if not node.level:
        return node.module or ""
    base = module.split(".")
    if not is_package:
        base = base[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def import_edges() -> tuple[dict[str, set[str]], list[str]]:
    """Module → the flows modules it imports (at any depth of its code), and every private
    name one module imports from another."""
    known = modules()
    edges: dict[str, set[str]] = {name: set() for name in known}
    private: list[str] = []
    for name, path in known.items():
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        is_package = path.name == "__init__.py"
        for node in runtime_imports(tree):
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            else:
                source = resolve(name, node, is_package)
                targets = []
                for alias in node.names:
                    submodule = f"{source}.{alias.name}"
                    targets.append(submodule if submodule in known else source)
                    if alias.name.startswith("_") and not alias.name.startswith("__") \
                            and source.startswith(PACKAGE) and source != name:
                        private.append(f"{path.relative_to(PACKAGE_ROOT.parent)}:{node.lineno} "
                                       f"imports {alias.name} from {source}")
            for target in targets:
                if target in known and target != name:
                    edges[name].add(target)
    return edges, private


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Every strongly connected component with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def connect(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in sorted(edges[node]):
            if target not in index:
                connect(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                top = stack.pop()
                on_stack.discard(top)
                component.append(top)
                if top == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(edges):
        if node not in index:
            connect(node)
    return found


def test_no_import_circle_in_the_package():
    edges, _ = import_edges()
    assert cycles(edges) == []


def test_no_private_name_is_imported_across_modules():
    _, private = import_edges()
    assert private == []


def test_the_checks_see_hidden_imports():
    """The walker finds a function-level import and a circle through it, and the private
    import, on a made-up pair of modules."""
    one = ast.parse("def f():\n    from flows.two import _helper\n")
    two = ast.parse("import flows.one\n")
    assert [type(n).__name__ for n in runtime_imports(one)] == ["ImportFrom"]
    assert len(runtime_imports(two)) == 1
    assert cycles({"flows.one": {"flows.two"}, "flows.two": {"flows.one"}}) == [["flows.one", "flows.two"]]
    assert cycles({"flows.one": {"flows.two"}, "flows.two": set()}) == []
    guarded = ast.parse("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import flows.two\n")
    assert len(runtime_imports(guarded)) == 1  # only the typing import


def test_stage_modules_do_not_import_prefect():
    """Prefect wraps the stages only in the flow modules."""
    flow_modules = {"flows.daily", "flows.backfill", "flows.tasks", "flows.cli", "flows.tempserver"}
    offenders = []
    for name, path in modules().items():
        if name in flow_modules or name.startswith(("flows.bench", "flows.web")):
            continue
        for node in runtime_imports(ast.parse(path.read_text(encoding="utf-8"))):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module or ""]
            if any(n == "prefect" or n.startswith("prefect.") for n in names):
                offenders.append(name)
    assert offenders == []
