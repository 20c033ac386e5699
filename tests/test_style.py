"""The shape rules of issue 8 and STYLE.md, checked on the package's source.

- no module over 400 lines;
- a function over 60 lines says why in its docstring (for a click command, after `\\f`);
- every field of a public record (a dataclass or NamedTuple) and every member of a public
  enum has its one-line docstring, as STYLE.md asks ("a one-line docstring per field").
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "stamp"
MAX_MODULE_LINES = 400
MAX_FUNCTION_LINES = 60
RECORD_BASES = {"NamedTuple"}
ENUM_BASES = {"Enum", "StrEnum", "IntEnum"}
_REASON_WORDS = ("long", "split", "one loop", "one dispatch", "in order", "in file order")


def _modules() -> list[Path]:
    return sorted(PACKAGE.rglob("*.py"))


def _name(node: ast.expr) -> str:
    if isinstance(node, ast.Call):
        node = node.func
    if isinstance(node, ast.Subscript):
        node = node.value
    if isinstance(node, ast.Attribute):
        return node.attr
    return node.id if isinstance(node, ast.Name) else ""


def _is_docstring(node: ast.stmt | None) -> bool:
    return (
        isinstance(node, ast.Expr)
        and isinstance(node.value, ast.Constant)
        and isinstance(node.value.value, str)
    )


def undocumented_fields(source: str) -> Iterator[str]:
    """`Class.field` for each public record field or enum member without a docstring."""
    for node in ast.walk(ast.parse(source)):
        if not isinstance(node, ast.ClassDef) or node.name.startswith("_"):
            continue
        bases = {_name(base) for base in node.bases}
        record = "dataclass" in {_name(d) for d in node.decorator_list} or bases & RECORD_BASES
        enum = bool(bases & ENUM_BASES)
        if not (record or enum):
            continue
        body = node.body
        for index, statement in enumerate(body):
            target: ast.expr | None = None
            if isinstance(statement, ast.AnnAssign) and record:
                if _name(statement.annotation) in ("ClassVar", "KW_ONLY"):
                    continue
                target = statement.target
            elif isinstance(statement, ast.Assign) and enum and len(statement.targets) == 1:
                target = statement.targets[0]
            if not isinstance(target, ast.Name) or target.id.startswith("_"):
                continue
            following = body[index + 1] if index + 1 < len(body) else None
            if not _is_docstring(following):
                yield f"{node.name}.{target.id}"


def long_functions_without_a_reason(source: str) -> Iterator[str]:
    """Each function over MAX_FUNCTION_LINES whose docstring gives no reason for it."""
    for node in ast.walk(ast.parse(source)):
        if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            continue
        assert node.end_lineno is not None
        length = node.end_lineno - node.lineno + 1
        doc = (ast.get_docstring(node) or "").lower()
        if length > MAX_FUNCTION_LINES and not any(word in doc for word in _REASON_WORDS):
            yield f"{node.name} ({length} lines)"


@pytest.mark.parametrize("path", _modules(), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_module_shape(path: Path) -> None:
    source = path.read_text()
    assert source.count("\n") <= MAX_MODULE_LINES, f"{path.name} is over 400 lines"
    assert list(long_functions_without_a_reason(source)) == []
    assert list(undocumented_fields(source)) == []


def test_the_checks_see_what_they_look_for() -> None:
    record = '''
from dataclasses import dataclass
from enum import Enum

@dataclass(frozen=True)
class Shown:
    """A record."""

    told: int
    """Documented."""
    untold: str = ""


class Colour(Enum):
    RED = "red"
    """Documented."""
    GREEN = "green"


class _Private(Enum):
    A = "a"
'''
    assert list(undocumented_fields(record)) == ["Shown.untold", "Colour.GREEN"]
    body = "\n".join(f"    x{n} = {n}" for n in range(61))
    assert list(long_functions_without_a_reason(f"def f():\n{body}\n")) == ["f (62 lines)"]
    reasoned = f'def f():\n    """Long: one loop with one deadline."""\n{body}\n'
    assert list(long_functions_without_a_reason(reasoned)) == []
