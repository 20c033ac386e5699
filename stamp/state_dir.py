"""Where a checkout keeps its edit counter and build history.

By default inside the git directory (`.git/stamp/`, or the worktree's own git directory),
so it is per checkout, survives `make clean`, and is never committed. `state_dir` in the
config moves it; outside git it is `.stamp/` beside the config.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

from stamp.config import Config
from stamp.fileio import resolve_path
from stamp.proc import run

STATE_SUBDIR = "stamp"


def git_dir_of(directory: Path) -> Path | None:
    """The absolute git directory of the checkout containing `directory`, if any."""
    try:
        done = run(["git", "rev-parse", "--absolute-git-dir"], cwd=directory, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return None
    if done.returncode != 0:
        return None
    return Path(done.stdout.strip())


def find_state_dir(config: Config, git_dir: Path | None = None) -> Path:
    """The state directory for `config` (not created here)."""
    if config.state_dir:
        return resolve_path(config.root / config.state_dir)
    git_dir = git_dir or git_dir_of(config.root)
    if git_dir is not None:
        return git_dir / STATE_SUBDIR
    return config.root / ".stamp"
