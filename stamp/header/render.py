"""Rendering the generated C files from Jinja2 templates, written only when bytes change.

Template sets live in `templates/NAME/*.j2` (shipped inside the wheel as
`stamp.templates`); a user may point `template` at a directory of their own `.j2` files.
Each `X.j2` renders to `X` in the output directory. The context is documented in
`TEMPLATE_CONTEXT` and in the README; undefined names are errors (StrictUndefined).
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, NamedTuple

from stamp.errors import StampError, TemplateError
from stamp.fileio import atomic_write, resolve_path

BUILTIN_SETS = ("default", "header-only")

TEMPLATE_CONTEXT = {
    "edit": "int: the editVersion",
    "git": 'str: full 40-hex SHA of HEAD, or "unknown"',
    "git_known": "bool: git is a real SHA",
    "git_short": 'str: first 8 hex digits, or "unknown"',
    "dirty": "bool | None: tracked files differ from HEAD; None outside git",
    "branch": "str | None: current branch; None when detached or unknown",
    "describe": "str | None: `git describe --tags`; None without tags",
    "commit_time": "int | None: committer time of HEAD (epoch seconds)",
    "build_time": "int | None: only with `build_time = true`; SOURCE_DATE_EPOCH wins",
    "report_json": "str: the SPEC section 6 JSON the device should report",
    "record_layout": "int: stamp record layout version",
    "record_size": "int: stamp record size in bytes",
    "stamp_version": "str: the version of stamp that rendered the file",
}

# Printable ASCII that needs escaping in a C string literal; "?" is escaped so that no
# `??X` trigraph can form (-trigraphs, or C89 compilers, would rewrite `??/` to `\`).
_SIMPLE_ESCAPES = {
    ord('"'): '\\"',
    ord("\\"): "\\\\",
    ord("?"): "\\?",
    ord("\n"): "\\n",
    ord("\t"): "\\t",
    ord("\r"): "\\r",
}


def c_string(value: Any) -> str:
    """`value` as a C string literal that compiles to exactly its UTF-8 bytes.

    Non-printable and non-ASCII bytes become three-digit octal escapes: unlike `\\x`,
    an octal escape stops after three digits, so a following hex-looking character can
    never be swallowed into it.
    """
    out = ['"']
    for byte in str(value).encode("utf-8", errors="surrogateescape"):
        if byte in _SIMPLE_ESCAPES:
            out.append(_SIMPLE_ESCAPES[byte])
        elif 0x20 <= byte < 0x7F:
            out.append(chr(byte))
        else:
            out.append(f"\\{byte:03o}")
    out.append('"')
    return "".join(out)


# A NamedTuple, not a dataclass: it is on `stamp header`'s no-op path (see stamp/header/run.py).
class TemplateSet(NamedTuple):
    """The templates to render: output name -> template source."""

    name: str
    """"default", "header-only", or the directory path given."""
    sources: tuple[tuple[str, bytes], ...]
    """(output file name, template bytes), sorted by name."""

    def digest(self) -> str:
        """Hash of every template's name and bytes (a changed template re-renders)."""
        h = hashlib.sha256(self.name.encode() + b"\0")
        for name, data in self.sources:
            h.update(name.encode() + b"\0" + hashlib.sha256(data).digest())
        return h.hexdigest()


def builtin_templates_dir() -> Path:
    """Where the `stamp.templates` package lives (in the wheel, or templates/ in a checkout).

    Found by path in an installed wheel, else through the import system (an editable
    install maps `stamp.templates` to the checkout's templates/); importlib.resources is
    avoided because its import alone costs several milliseconds of the no-op budget.
    """
    beside = Path(__file__).resolve().parent / "templates"
    if beside.is_dir():
        return beside
    import importlib.util

    spec = importlib.util.find_spec("stamp.templates")
    if spec is None or not spec.submodule_search_locations:
        raise TemplateError("stamp's built-in templates are missing: reinstall stamp")
    return Path(next(iter(spec.submodule_search_locations)))


def load_template_set(template: str, root: Path) -> TemplateSet:
    """Find the template set named in the config (built-in name or a directory)."""
    if template in BUILTIN_SETS:
        directory = builtin_templates_dir() / template
        entries = [(p.name, p.read_bytes()) for p in directory.iterdir() if p.name.endswith(".j2")]
    else:
        path = resolve_path(root / template)
        if not path.is_dir():
            raise TemplateError(
                f"template `{template}` is neither a built-in set "
                f"({', '.join(BUILTIN_SETS)}) nor a directory (looked in {path})"
            )
        try:
            entries = [(p.name, p.read_bytes()) for p in path.iterdir() if p.name.endswith(".j2")]
        except OSError as exc:
            raise TemplateError(f"cannot read templates in {path}: {exc.strerror}") from None
    if not entries:
        raise TemplateError(f"template set `{template}` has no .j2 files")
    return TemplateSet(
        name=template,
        sources=tuple(sorted((name[: -len(".j2")], data) for name, data in entries)),
    )


def render_all(templates: TemplateSet, context: Mapping[str, Any]) -> dict[str, bytes]:
    """Render every template in memory: output name -> bytes (UTF-8, LF line endings)."""
    import jinja2  # only when something must be rendered: the no-op path skips it

    env = jinja2.Environment(
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        newline_sequence="\n",
        autoescape=False,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["c_string"] = c_string
    rendered: dict[str, bytes] = {}
    for name, source in templates.sources:
        try:
            text = env.from_string(source.decode("utf-8")).render(context)
        except UnicodeDecodeError:
            raise TemplateError(f"template {name}.j2 is not UTF-8") from None
        except jinja2.UndefinedError as exc:
            raise TemplateError(
                f"template {name}.j2 uses an unknown variable: {exc.message}"
                f" (available: {', '.join(sorted(TEMPLATE_CONTEXT))})"
            ) from None
        except jinja2.TemplateError as exc:
            raise TemplateError(f"template {name}.j2 is invalid: {exc}") from None
        rendered[name] = text.replace("\r\n", "\n").encode("utf-8")
    return rendered


def write_if_changed(path: Path, data: bytes) -> bool:
    """Write `data` atomically unless `path` already holds exactly these bytes.

    Returns True when written. An unchanged file keeps its mtime, so make rebuilds nothing
    (the Linux kernel's `filechk` does the same).
    """
    try:
        if path.read_bytes() == data:
            return False
    except FileNotFoundError:
        pass
    except IsADirectoryError:
        raise StampError(f"cannot write {path}: it is a directory") from None
    except OSError:
        pass  # unreadable: try to replace it below, which reports the real problem
    try:
        atomic_write(path, data)
    except OSError as exc:
        raise StampError(
            f"cannot write {path}: {exc.strerror or exc}"
            " (check permissions, or choose another --output-dir)"
        ) from None
    return True


def file_sha256(path: Path) -> str | None:
    """SHA-256 of a file's bytes, None when it cannot be read."""
    try:
        with path.open("rb") as fp:
            return hashlib.file_digest(fp, "sha256").hexdigest()
    except OSError:
        return None


def source_date_epoch(env: Mapping[str, str] | None = None) -> int | None:
    """SOURCE_DATE_EPOCH as an int, if set and valid (reproducible-builds.org)."""
    value = (env if env is not None else os.environ).get("SOURCE_DATE_EPOCH", "").strip()
    return int(value) if value.isdigit() else None
