"""The git pre-commit hook: keep committed generated files fresh.

For workflows where no pre-build step can run (Particle cloud compiles, online IDEs), the
generated files are committed. The hook re-runs `stamp header` before each commit and
stages those generated files that git tracks, so a committed header is never stale.

Inside a pre-commit hook HEAD is still the *parent* of the commit being made: the
committed file names that parent's SHA and is marked dirty (the commit's changes differ
from it). The edit number is what identifies the build.
"""

from __future__ import annotations

import os
import shlex
import stat
import subprocess
import sys
from dataclasses import dataclass
from enum import Enum
from pathlib import Path

from stamp import proc
from stamp.errors import GitError, StampError
from stamp.header.git import relative_to_toplevel

GIT_HOOK_TIMEOUT = 60.0
"""Seconds a git command inside the hook may take."""

MARKER = "# installed by `stamp hooks install`"
CHAINED_SUFFIX = ".stamp-chained"
HOOK_NAME = "pre-commit"


class HookAction(Enum):
    """What `install` or `uninstall` did to the hook file."""

    INSTALLED = "installed"
    """stamp's hook was written (chaining any hook that was there)."""
    ALREADY_INSTALLED = "already installed"
    """stamp's hook was there already: nothing was written."""
    UNINSTALLED = "uninstalled"
    """stamp's hook was removed (and a chained hook put back)."""
    NOT_INSTALLED = "not installed"
    """There was no hook of stamp's to remove."""


@dataclass(frozen=True)
class HookResult:
    """What install/uninstall did."""

    action: HookAction
    """What was done."""
    path: Path
    """The hook file."""
    chained: Path | None = None
    """A pre-existing hook now called from ours (or restored on uninstall)."""


def hook_script(python: str) -> str:
    """The hook: run stamp's pre-commit step, then any hook it replaced."""
    return f"""#!/bin/sh
{MARKER}; remove with `stamp hooks uninstall`.
# Refreshes stamp's generated files that git tracks and stages them.
set -e
hook_dir=$(dirname "$0")
if [ -x {shlex.quote(python)} ]; then
    {shlex.quote(python)} -m stamp hooks pre-commit --stage
else
    stamp hooks pre-commit --stage
fi
if [ -x "$hook_dir/{HOOK_NAME}{CHAINED_SUFFIX}" ]; then
    exec "$hook_dir/{HOOK_NAME}{CHAINED_SUFFIX}" "$@"
fi
"""


def _is_ours(path: Path) -> bool:
    try:
        return MARKER in path.read_text(errors="replace")
    except OSError:
        return False


def install(hooks_dir: Path, python: str | None = None) -> HookResult:
    """Install the hook into `hooks_dir`, chaining an existing foreign hook. Idempotent."""
    hook = hooks_dir / HOOK_NAME
    chained = hooks_dir / (HOOK_NAME + CHAINED_SUFFIX)
    script = hook_script(python or sys.executable)
    try:
        hooks_dir.mkdir(parents=True, exist_ok=True)
        if hook.exists() and _is_ours(hook):
            if hook.read_text() == script:
                return HookResult(
                    HookAction.ALREADY_INSTALLED, hook, chained if chained.exists() else None
                )
        elif hook.exists() or hook.is_symlink():
            if chained.exists():
                raise StampError(
                    f"{chained} already exists: move it away, then run `stamp hooks install` again"
                )
            os.replace(hook, chained)
        hook.write_text(script)
        hook.chmod(hook.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    except OSError as exc:
        raise StampError(f"cannot install the hook in {hooks_dir}: {exc.strerror or exc}") from None
    return HookResult(HookAction.INSTALLED, hook, chained if chained.exists() else None)


def uninstall(hooks_dir: Path) -> HookResult:
    """Remove our hook and put back the one it chained, if any."""
    hook = hooks_dir / HOOK_NAME
    chained = hooks_dir / (HOOK_NAME + CHAINED_SUFFIX)
    if not _is_ours(hook):
        return HookResult(HookAction.NOT_INSTALLED, hook)
    try:
        hook.unlink()
        if chained.exists() or chained.is_symlink():
            os.replace(chained, hook)
            return HookResult(HookAction.UNINSTALLED, hook, hook)
    except OSError as exc:
        raise StampError(f"cannot remove the hook {hook}: {exc.strerror or exc}") from None
    return HookResult(HookAction.UNINSTALLED, hook)


def tracked(paths: list[Path], cwd: Path) -> list[Path]:
    """Those of `paths` that git tracks (in the index the hook is committing)."""
    if not paths:
        return []
    done = _git(["ls-files", "--full-name", "-z", "--", *[str(p) for p in paths]], cwd)
    listed = {name for name in done.out.decode(errors="surrogateescape").split("\0") if name}
    top = _git(["rev-parse", "--show-toplevel"], cwd).stdout.strip()
    return [p for p in paths if relative_to_toplevel(p, Path(top)) in listed]


def _git(args: list[str], cwd: Path) -> proc.Completed:
    """git inside the hook: with the hook's own GIT_* (its index), bounded in time."""
    try:
        done = proc.run(["git", *args], cwd=cwd, timeout=GIT_HOOK_TIMEOUT, keep_git_env=True)
    except OSError as exc:
        raise GitError(f"cannot run git: {exc.strerror or exc}") from None
    except subprocess.TimeoutExpired:
        raise GitError(f"git {args[0]} did not answer within {GIT_HOOK_TIMEOUT:.0f} s") from None
    if done.returncode != 0:
        raise GitError(f"git {args[0]} failed: {done.stderr.strip()}")
    return done


def stage(paths: list[Path], cwd: Path) -> None:
    """`git add` the paths with the hook's own environment: inside the hook GIT_INDEX_FILE
    names the index being committed (a temporary one for `git commit -a` or
    `git commit FILE`), and the staged file must land there."""
    if not paths:
        return
    _git(["add", "--", *[str(p) for p in paths]], cwd)
