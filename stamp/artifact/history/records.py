"""The records of the build history and the one line a build travels as in git notes."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from stamp.artifact.manifest import Manifest


@dataclass(frozen=True)
class Origin:
    """Where a build was made, as its note carries it to other clones."""

    host: str | None
    """The machine's host name."""
    user: str | None
    """The account that ran `stamp manifest`."""
    ci: bool
    """It ran in a CI job (the CI or JENKINS_URL variable was set)."""


@dataclass(frozen=True)
class Build:
    """One row of the history."""

    number: int
    """Its row number in this checkout's history (not an edit number)."""
    manifest: Manifest
    """The build's manifest."""
    origin: Origin | None
    """Where it was built, when known."""
    pulled_from: str | None = None
    """The remote it was pulled from; None for a build recorded in this checkout."""
    pulled_at: str | None = None
    """When it was pulled, ISO 8601 UTC."""


@dataclass(frozen=True)
class LegacyImport:
    """What the one-time import of the JSON-lines history did."""

    path: Path
    """The old history file (left in place)."""
    imported: int
    """Builds copied into the database."""
    skipped: int
    """Lines that could not be read (kept in the file)."""


def local_origin(environ: Mapping[str, str]) -> Origin:
    """The Origin of a build made here and now."""
    user = environ.get("USER") or environ.get("LOGNAME")
    if not user:
        with contextlib.suppress(KeyError, ImportError):
            import pwd

            user = pwd.getpwuid(os.getuid()).pw_name
    ci = bool(environ.get("CI") or environ.get("JENKINS_URL"))
    return Origin(host=os.uname().nodename or None, user=user or None, ci=ci)


def build_key(manifest: Manifest) -> str:
    """What makes two manifests the same build: known identity keys and artifacts."""
    same = {
        "identity": manifest.identity.known(),
        "elf": asdict(manifest.elf) if manifest.elf else None,
        "bin": asdict(manifest.bin) if manifest.bin else None,
    }
    return hashlib.sha256(canonical(same).encode()).hexdigest()


def note_line(manifest: Mapping[str, Any], origin: Mapping[str, Any] | None) -> str:
    """The one line a build travels as in git notes: its manifest's JSON and its origin's,
    canonical (sorted keys, no spaces, ASCII), so that equal builds give equal lines."""
    return canonical({"manifest": manifest, "origin": origin})


def canonical(obj: Any) -> str:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=True)


def origin_json(origin: Origin | None) -> dict[str, Any] | None:
    return asdict(origin) if origin is not None else None


def origin_from_json(obj: Any) -> Origin | None:
    """The Origin of a note's or a row's `origin` object (None when absent or malformed)."""
    if not isinstance(obj, dict):
        return None
    host, user = obj.get("host"), obj.get("user")
    return Origin(
        host=host if isinstance(host, str) else None,
        user=user if isinstance(user, str) else None,
        ci=obj.get("ci") is True,
    )
