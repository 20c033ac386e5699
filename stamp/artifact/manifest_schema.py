"""The manifest's schema, checked in full before a manifest is believed (issue 10).

`check_manifest` walks a decoded manifest and raises `SchemaError` naming the first field
that is wrong (`artifacts.elf.size`, `schema`, `git`), so a corrupt or hand-edited file is
exit 2 with the field to fix, never a KeyError or an OverflowError. `decode_manifest`
turns the file's bytes into JSON however they fail (100,000-deep nesting, a 5,000-digit
number, invalid UTF-8): one `SchemaError`.

A validator library (msgspec, cattrs) was considered; the schema is a dozen fields, its
hex rules live in stamp.identity, and `stamp header`'s no-op path must not import one, so
this is plain code over the decoded JSON.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

from stamp.identity import KEYS, Kind
from stamp.record import GIT_UNKNOWN, MAX_EDIT

SCHEMA_VERSION = 1
MAX_MANIFEST_BYTES = 1 << 20
"""A manifest is a few KB; a bigger file is not one."""

_HEX64 = re.compile(r"[0-9a-fA-F]{64}")
_COMMIT = re.compile(r"[0-9a-fA-F]{40}|[0-9a-fA-F]{64}")
_ANY_HEX = re.compile(r"[0-9a-fA-F]{1,256}")
_BUILD_ID = re.compile(r"(?:[0-9a-fA-F]{2}){1,128}")
_HEX_RULES = {
    "git": (_COMMIT, '40 (or 64) hex digits or "unknown"'),
    "build_id": (_BUILD_ID, "an even number of hex digits"),
    "app_hash": (_HEX64, "64 hex digits"),
    "image_sha256": (_HEX64, "64 hex digits"),
    # MCUboot's image hash TLV: SHA-256, or SHA-384 / SHA-512 in newer images.
    "mcuboot_hash": (
        re.compile(r"[0-9a-fA-F]{64}|[0-9a-fA-F]{96}|[0-9a-fA-F]{128}"),
        "a hash in hex",
    ),
}
_ARTIFACTS = ("elf", "bin")
MAX_INFO = 256
"""Longest informational text (ESP-IDF's fields are at most 32 characters)."""


class SchemaError(ValueError):
    """A manifest field that is wrong: `field` names it, the message says how."""

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(f"`{field}` {problem}")
        self.field = field


def decode_manifest(data: bytes) -> Any:
    """The JSON in a manifest file's bytes; SchemaError however it fails."""
    if len(data) > MAX_MANIFEST_BYTES:
        raise SchemaError("(file)", f"is larger than {MAX_MANIFEST_BYTES} bytes")
    try:
        return json.loads(data)
    except RecursionError:
        raise SchemaError("(file)", "is nested too deeply to be a manifest") from None
    except json.JSONDecodeError as exc:
        raise SchemaError("(file)", f"is not valid JSON ({exc.msg}, line {exc.lineno})") from None
    except UnicodeDecodeError:  # a firmware file given as the manifest, most likely
        raise SchemaError(
            "(file)",
            "is not a stamp manifest (not UTF-8 JSON text: a binary file?): give the "
            "NAME.stamp.json that `stamp manifest` wrote",
        ) from None
    except ValueError:  # an integer of thousands of digits
        raise SchemaError("(file)", "is not valid JSON (a number of thousands of digits)") from None


def check_manifest(record: Any) -> None:
    """SchemaError naming the first wrong field of a decoded manifest, else None."""
    if not isinstance(record, dict):
        raise SchemaError("(top level)", f"is {_kind(record)}, not a JSON object")
    schema = record.get("schema")
    if type(schema) is not int or schema != SCHEMA_VERSION:
        raise SchemaError("schema", f"is {_shown(schema)}, expected {SCHEMA_VERSION}")
    _check_identity(record)
    recorded = record.get("recorded_at")
    if recorded is not None and not isinstance(recorded, str):
        raise SchemaError("recorded_at", f"is {_kind(recorded)}, not an ISO 8601 string")
    artifacts = record.get("artifacts")
    if artifacts is not None:
        if not isinstance(artifacts, dict):
            raise SchemaError("artifacts", f"is {_kind(artifacts)}, not an object")
        for name in _ARTIFACTS:
            if artifacts.get(name) is not None:
                _check_artifact(artifacts[name], f"artifacts.{name}")
    particle = record.get("particle")
    if particle is not None and not isinstance(particle, dict):
        raise SchemaError("particle", f"is {_kind(particle)}, not an object")


def _check_identity(record: dict[str, Any]) -> None:
    edit = record.get("edit")
    if edit is not None and (type(edit) is not int or not 0 <= edit <= MAX_EDIT):
        raise SchemaError("edit", f"is {_shown(edit)}, not a whole number 0 .. {MAX_EDIT}")
    dirty = record.get("dirty")
    if dirty is not None and not isinstance(dirty, bool):
        raise SchemaError("dirty", f"is {_shown(dirty)}, not true or false")
    for key, (pattern, words) in _HEX_RULES.items():
        value = record.get(key)
        if value is None or (key == "git" and value == GIT_UNKNOWN):
            continue
        if not isinstance(value, str) or not pattern.fullmatch(value):
            raise SchemaError(key, f"is {_shown(value)}, not {words}")
    for spec in KEYS:
        if spec.name in ("edit", "dirty") or spec.name in _HEX_RULES:
            continue
        value = record.get(spec.name)
        if value is None:
            continue
        if spec.kind is Kind.INFO:  # informational text (ESP-IDF's app version, ...)
            if not isinstance(value, str) or len(value) > MAX_INFO:
                raise SchemaError(spec.name, f"is {_shown(value)}, not a short text")
        elif not isinstance(value, str) or not _ANY_HEX.fullmatch(value):  # a key added since
            raise SchemaError(spec.name, f"is {_shown(value)}, not hex digits")


def _check_artifact(value: Any, where: str) -> None:
    if not isinstance(value, dict):
        raise SchemaError(where, f"is {_kind(value)}, not an object")
    path, sha256, size = value.get("path"), value.get("sha256"), value.get("size")
    if not isinstance(path, str) or not path or "\0" in path:
        raise SchemaError(f"{where}.path", f"is {_shown(path)}, not a file path")
    if not isinstance(sha256, str) or not _HEX64.fullmatch(sha256):
        raise SchemaError(f"{where}.sha256", f"is {_shown(sha256)}, not 64 hex digits")
    if type(size) is not int or size < 0:
        raise SchemaError(f"{where}.size", f"is {_shown(size)}, not a whole number of bytes")


def _kind(value: Any) -> str:
    names = {dict: "an object", list: "a list", str: "a string", bool: "a boolean"}
    if value is None:
        return "null"
    return names.get(type(value), "a number")


def _shown(value: Any) -> str:
    if isinstance(value, float) and not math.isfinite(value):
        return "a number too large for JSON"
    if isinstance(value, dict | list):
        return _kind(value)
    text = json.dumps(value)
    return text if len(text) <= 60 else text[:57] + "..."
