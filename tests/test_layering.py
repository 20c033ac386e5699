"""The package's one-way flow (README "For contributors"), read from the source itself.

Every `import stamp...` in every module, module-level or inside a function, is checked
against the layers: the CLI may use everything; the device step uses the artifact step's
manifest and history; every step uses the shared ground; the ground uses only itself.
Module-level imports (outside `if TYPE_CHECKING:`) must also form no cycle.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import stamp

PACKAGE = Path(stamp.__file__).parent
STEPS = ("cli", "header", "artifact", "device", "sim")
GROUND = "ground"

ALLOWED = {
    "cli": {"cli", "header", "artifact", "device", "sim", GROUND},
    "header": {"header", GROUND},
    "artifact": {"artifact", GROUND},
    "device": {"device", "artifact", GROUND},
    "sim": {"sim", "device", "artifact", GROUND},
    GROUND: {GROUND},
}
"""Which layers a layer's modules may import."""

EXCEPTIONS = {
    # Recovering a lost edit counter reads the highest edit in the build history: imported
    # lazily, only on that path (stamp.header.edit.highest_known_edit).
    ("stamp.header.edit", "stamp.artifact.history"),
}


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def layer(module: str) -> str:
    if module == "stamp.__main__":  # `python -m stamp`: the console script's twin
        return "cli"
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[1] in STEPS else GROUND


def imports(tree: ast.Module, known: set[str]) -> Iterator[tuple[str, bool]]:
    """(imported stamp module, at module level outside TYPE_CHECKING) for every import;
    `from stamp.cli import exits` imports stamp.cli.exits when that is a module in `known`."""
    top_level: set[int] = set()
    pending: list[ast.AST] = list(tree.body)
    while pending:  # what runs on import: not function bodies, not TYPE_CHECKING blocks
        node = pending.pop()
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            continue
        top_level.add(id(node))
        if not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda):
            pending.extend(ast.iter_child_nodes(node))
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("stamp"):
            base = node.module
            names = [
                f"{base}.{a.name}" if f"{base}.{a.name}" in known else base for a in node.names
            ]
        elif isinstance(node, ast.Import):
            names = [alias.name for alias in node.names if alias.name.startswith("stamp")]
        else:
            continue
        for name in names:
            yield name, id(node) in top_level


def graph() -> dict[str, list[tuple[str, bool]]]:
    paths = sorted(PACKAGE.rglob("*.py"))
    known = {module_name(path) for path in paths}
    return {module_name(path): list(imports(ast.parse(path.read_text()), known)) for path in paths}


def test_every_import_follows_the_flow() -> None:
    modules = graph()
    assert len(modules) > 100 and "stamp.cli.app" in modules and "stamp.identity" in modules
    wrong = [
        f"{module} ({layer(module)}) imports {target} ({layer(target)})"
        for module, targets in modules.items()
        for target, _ in targets
        if layer(target) not in ALLOWED[layer(module)]
        and not any(module == a and target.startswith(b) for a, b in EXCEPTIONS)
    ]
    assert wrong == []


def test_the_exceptions_are_still_needed() -> None:
    modules = graph()
    for module, target in EXCEPTIONS:
        assert any(t.startswith(target) for t, _ in modules[module]), (module, target)


def test_module_level_imports_have_no_cycle() -> None:
    modules = graph()
    edges = {
        module: {t for t, top in targets if top and t in modules and t != module}
        for module, targets in modules.items()
    }
    done: set[str] = set()
    cycles: list[list[str]] = []

    def visit(module: str, path: list[str]) -> None:
        if module in path:
            cycles.append([*path[path.index(module) :], module])
            return
        if module in done:
            return
        for target in sorted(edges[module]):
            visit(target, [*path, module])
        done.add(module)

    for module in sorted(edges):
        visit(module, [])
    assert cycles == []


def test_the_check_sees_a_wrong_import() -> None:
    tree = ast.parse("def f():\n    from stamp.cli.verdict_words import x\n")
    found = list(imports(tree, {"stamp.cli.verdict_words"}))
    assert found == [("stamp.cli.verdict_words", False)]
    assert layer("stamp.cli.verdict_words") not in ALLOWED[layer("stamp.device.verify")]
