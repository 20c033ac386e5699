"""Crash-safe file writes: a temp file in the same directory, fsync, then os.replace.

A reader (or a crash at any instant) sees the old file or the new one, never half.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path


def atomic_write(path: Path, data: bytes) -> None:
    """Write `data` to `path` via a temp file in the same directory and os.replace."""
    import tempfile  # not at module level: it pulls in random and shutil (stamp header's budget)

    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fp:
            fp.write(data)
            fp.flush()
            os.fsync(fp.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def remove_stale_temps(path: Path) -> None:
    """Delete temp files an interrupted `atomic_write(path, …)` left behind.

    Only call this while holding the lock that serialises writers of `path` (stamp's
    state lock): then no other writer's temp file can be in flight.
    """
    for leftover in path.parent.glob(f".{path.name}.*.tmp"):
        with contextlib.suppress(OSError):
            leftover.unlink()


def resolve_path(path: Path) -> Path:
    """`path.resolve()`, with a symbolic-link loop as a StampError naming it (issue 10)."""
    try:
        return path.resolve()
    except (RuntimeError, OSError) as exc:  # 3.11 raises RuntimeError for a loop
        from stamp.errors import StampError

        raise StampError(
            f"{path} cannot be resolved ({exc}): a symbolic link in it points back into "
            "itself; fix or remove the link"
        ) from None
