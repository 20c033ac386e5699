"""The build history (SPEC section 10): SQLite in the state directory, shared through git notes.

- `db`: the database (`History`): append, look up, migrate, import the old JSON-lines file.
- `records`: its rows (`Build`, `Origin`) and the line a build travels as in git notes.
- `lookup`: a build by an edit number or a hex value a person types.
- `git_notes`: `stamp history push` / `pull`.
- `recovery`: the highest edit recorded here, for the edit counter's recovery.
"""

from __future__ import annotations

from stamp.artifact.history.db import DB_NAME, History
from stamp.artifact.history.records import Build, LegacyImport, Origin, local_origin
from stamp.artifact.history.recovery import highest_edit

__all__ = ["DB_NAME", "Build", "History", "LegacyImport", "Origin", "highest_edit", "local_origin"]
