"""The edit counter's recovery from the history (stamp.header.edit), read-only and forgiving.

Only a lost or corrupt edit state comes here, never `stamp header`'s no-op path: this is
where sqlite3 is first imported on the header side.
"""

from __future__ import annotations

import contextlib
import re
from pathlib import Path

from stamp.artifact.history.db import DB_NAME, History
from stamp.artifact.history.legacy import LEGACY_NAME
from stamp.errors import StateError


def highest_edit(state_dir: Path) -> int:
    """The highest edit this checkout recorded (0 if none): for the edit counter's recovery.

    Reads the database when there is one, else the JSON-lines history of older versions;
    an unreadable history counts as empty (recovery must not fail on it).
    """
    path = state_dir / DB_NAME
    if path.exists():
        with contextlib.suppress(StateError), History.open(state_dir) as history:
            return history.highest_local_edit()
        return 0
    best = 0
    with contextlib.suppress(OSError):
        for match in re.finditer(rb'"edit": ?(\d+)', (state_dir / LEGACY_NAME).read_bytes()):
            best = max(best, int(match.group(1)))
    return best
