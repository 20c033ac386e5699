"""The JSON-lines history of stamp before 0.2, imported once into the database.

Its unreadable lines are counted and left in the file, which is never rewritten; the temp
copies its killed writers left behind are removed (issue 10, item 16).
"""

from __future__ import annotations

import contextlib
import json
from pathlib import Path

from stamp.artifact.manifest import Manifest
from stamp.errors import StampError, StateError

LEGACY_NAME = "history.jsonl"
BAD_RECORD = (
    ValueError,
    LookupError,
    TypeError,
    AttributeError,
    OverflowError,
    RecursionError,
    StampError,
)
"""What decoding and validating one line someone else wrote can raise (issue 10, item 7:
a `{}` artifact gave KeyError, a deep line RecursionError)."""


def read_legacy(legacy: Path) -> tuple[list[Manifest], int] | None:
    """The readable manifests of the JSON-lines history, oldest first, and how many lines
    were not readable; None when there is no such file."""
    try:
        lines = legacy.read_bytes().splitlines()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise StateError(f"cannot read the old build history {legacy}: {exc.strerror}") from None
    manifests: list[Manifest] = []
    skipped = 0
    for raw in lines:
        if not raw.strip():
            continue
        try:
            manifests.append(Manifest.from_json(json.loads(raw), str(legacy)))
        except BAD_RECORD:
            skipped += 1  # torn by a crash in an older stamp, or hand-edited: the file keeps it
    return manifests, skipped


def remove_legacy_temps(legacy: Path) -> None:
    """Delete the `.history.jsonl.*.tmp` copies killed writers of older stamps left.

    Older stamps wrote the history under an flock on `history.lock`; holding it here means
    no such writer is in flight (see issue 10, item 16).
    """
    from stamp.fileio import locked, remove_stale_temps

    if not any(legacy.parent.glob(f".{legacy.name}.*.tmp")):
        return
    with contextlib.suppress(OSError), locked(legacy.with_suffix(".lock")):
        remove_stale_temps(legacy)
