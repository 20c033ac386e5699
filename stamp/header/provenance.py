"""Is a firmware file from this checkout, and from its current source state?

Two silent wrong contexts (issue 11): a .bin built in another repository goes into this
checkout's history although its git commit is unknown here, and an ELF built before the
last `stamp header` (its record's edit is older than the counter's) is taken as the
current build. Both are worth a warning, never a refusal: a CI artefact fetched from
another clone is legitimate, and so is recording an old build on purpose.
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path

from stamp.header.edit import load_state
from stamp.header.git import UNKNOWN
from stamp.proc import run

_HEX40 = frozenset("0123456789abcdef")


@dataclass(frozen=True)
class Provenance:
    """How a build's record relates to this checkout."""

    foreign_commit: bool
    """The record names a git commit this repository does not have."""
    current_edit: int | None
    """The checkout's edit counter when the record's edit is older than it; else None."""


def check_provenance(git: str | None, edit: int | None, root: Path, state_dir: Path) -> Provenance:
    """Compare a record's (git, edit) with the repository at `root` and its edit state."""
    known = bool(git) and git != UNKNOWN and len(git or "") == 40 and set(git or "") <= _HEX40
    foreign = known and _commit_missing(root, git or "")
    current_edit = None
    if edit is not None and not foreign:
        state = load_state(state_dir)
        if state is not None and state.edit > edit:
            current_edit = state.edit
    return Provenance(foreign_commit=foreign, current_edit=current_edit)


def _commit_missing(root: Path, sha: str) -> bool:
    """True only when `root` is in a git repository that lacks commit `sha`.

    One git process answers both (`stamp manifest` runs on every build): rev-parse prints
    the git directory before it looks the commit up, and prints nothing outside a
    repository."""
    args = ["git", "rev-parse", "--git-dir", "--verify", "--quiet", f"{sha}^{{commit}}"]
    try:
        found = run(args, cwd=root, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return False
    inside = bool(found.out.strip())  # not a repository: nothing to compare with
    return inside and found.returncode != 0
