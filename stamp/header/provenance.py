"""Is a firmware file from this checkout, and from its current source state?

Two silent wrong contexts (issue 11): a .bin built in another repository goes into this
checkout's history although its git commit is unknown here, and an ELF built before the
last `stamp header` (its record's edit is older than the counter's) is taken as the
current build. Both are worth a warning, never a refusal: a CI artefact fetched from
another clone is legitimate, and so is recording an old build on purpose.

Whether the commit is this repository's is asked by `stamp.artifact.recording.locate`,
in the git process that finds the state directory; the edit counter is read here.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from stamp.header.edit import load_state


@dataclass(frozen=True)
class Provenance:
    """How a build's record relates to this checkout."""

    foreign_commit: bool
    """The record names a git commit this repository does not have."""
    current_edit: int | None
    """The checkout's edit counter when the record's edit is older than it; else None."""


def check_provenance(foreign_commit: bool, edit: int | None, state_dir: Path) -> Provenance:
    """A record's provenance: its commit is `foreign_commit` to this repository, and its
    `edit` is compared with the edit state in `state_dir` (only for a commit of ours)."""
    current_edit = None
    if edit is not None and not foreign_commit:
        state = load_state(state_dir)
        if state is not None and state.edit > edit:
            current_edit = state.edit
    return Provenance(foreign_commit=foreign_commit, current_edit=current_edit)
