"""The git state of a checkout: SHA, dirty flag, branch, describe, commit time.

`stamp header` runs on every build, so this module calls git's porcelain directly
(four small processes started in parallel) instead of importing GitPython, whose import
alone costs about as much as the whole no-op budget. GitPython is used where speed does
not matter (`stamp hooks`), behind this module.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Sequence
from pathlib import Path
from typing import NamedTuple

from stamp import proc
from stamp.errors import GitError
from stamp.fileio import relative_path, resolve_path

GIT_TIMEOUT = 60.0
UNKNOWN = "unknown"


# A NamedTuple, not a dataclass: it is on `stamp header`'s no-op path (see stamp/header/run.py).
class Change(NamedTuple):
    """One path that differs from HEAD (or is untracked), relative to the top level."""

    path: str
    """Slash-separated path relative to the repository's top level."""
    status: str
    """Porcelain v2 XY code, "??" for untracked, "D" when the file is gone."""


class GitState(NamedTuple):
    """What git says about a checkout."""

    available: bool
    """False outside a git repository or without git; the other fields are then unknown."""
    sha: str = UNKNOWN
    """Full 40-hex SHA of HEAD, or "unknown" (also before the first commit)."""
    dirty: bool | None = None
    """Tracked files differ from HEAD (untracked too with include_untracked)."""
    branch: str | None = None
    """Current branch; None when detached or unknown."""
    describe: str | None = None
    """`git describe --tags`; None without tags."""
    commit_time: int | None = None
    """Committer time of HEAD, seconds since the epoch."""
    toplevel: Path | None = None
    """The work tree's top level."""
    git_dir: Path | None = None
    """This checkout's own git directory (a worktree's, a submodule's)."""
    shallow: bool = False
    """The repository is a shallow clone (describe may be missing tags)."""
    changes: tuple[Change, ...] = ()
    """Paths that differ from HEAD, after exclusions."""
    reason: str = ""
    """Why git state is unavailable, for the warning."""


def _start(args: Sequence[str], cwd: Path) -> proc.Running:
    return proc.start(["git", *args], cwd=cwd)


def _finish(running: proc.Running) -> tuple[int, bytes, str]:
    try:
        done = running.wait(GIT_TIMEOUT)
    except subprocess.TimeoutExpired:
        raise GitError(f"git did not answer within {GIT_TIMEOUT:.0f} s") from None
    return done.returncode, done.out, done.stderr


def _dubious(stderr: str, where: Path) -> GitError:
    return GitError(
        f"git refuses to read {where}: the repository is owned by another user. "
        f"If you trust it, run: git config --global --add safe.directory '{where}'",
        detail=stderr.strip(),
    )


def is_excluded(path: str, excludes: Sequence[str]) -> bool:
    """`path` (slash-separated, relative) is one of `excludes` or lies below one."""
    for prefix in excludes:
        prefix = prefix.strip("/")
        if path == prefix or path.startswith(prefix + "/"):
            return True
    return False


def parse_status(
    out: bytes, *, untracked: bool, excludes: Sequence[str]
) -> tuple[str | None, str | None, list[Change]]:
    """Parse `git status --porcelain=v2 --branch -z`: (oid, branch, changes)."""
    oid: str | None = None
    branch: str | None = None
    changes: list[Change] = []
    records = out.split(b"\0")
    i = 0
    while i < len(records):
        rec = records[i].decode("utf-8", errors="surrogateescape")
        i += 1
        if not rec:
            continue
        if rec.startswith("# branch.oid "):
            value = rec[len("# branch.oid ") :]
            oid = None if value == "(initial)" else value
        elif rec.startswith("# branch.head "):
            value = rec[len("# branch.head ") :]
            branch = None if value == "(detached)" else value
        elif rec.startswith("1 "):
            parts = rec.split(" ", 8)
            changes.append(Change(parts[8], parts[1]))
        elif rec.startswith("2 "):
            parts = rec.split(" ", 9)
            changes.append(Change(parts[9], parts[1]))
            i += 1  # the rename's original path follows as its own record
        elif rec.startswith("u "):
            parts = rec.split(" ", 10)
            changes.append(Change(parts[10], parts[1]))
        elif rec.startswith("? ") and untracked:
            changes.append(Change(rec[2:], "??"))
    kept = [c for c in changes if not is_excluded(c.path, excludes)]
    return oid, branch, kept


def read_state(
    directory: Path,
    *,
    include_untracked: bool = False,
    exclude: Sequence[str] = (),
    exclude_paths: Sequence[Path] = (),
) -> GitState:
    """The git state of the checkout containing `directory`.

    `exclude` holds prefixes relative to `directory`, `exclude_paths` absolute paths;
    changes under either are ignored. Outside a repository, or without git, returns
    GitState(available=False) with the reason; a repository git refuses to read (dubious
    ownership) raises GitError.

    Long because it starts four git processes in parallel (the no-op budget of `stamp
    header`) and then reads each answer; splitting would serialise them.
    """
    try:
        rev = _start(
            [
                "rev-parse",
                "--absolute-git-dir",
                "--show-toplevel",
                "--is-shallow-repository",
            ],
            directory,
        )
    except FileNotFoundError:
        return GitState(available=False, reason="git is not installed")
    except OSError as exc:
        return GitState(available=False, reason=f"cannot run git: {exc.strerror or exc}")
    untracked = "normal" if include_untracked else "no"
    status = _start(
        ["status", "--porcelain=v2", "--branch", "-z", f"--untracked-files={untracked}"],
        directory,
    )
    describe = _start(["describe", "--tags"], directory)
    when = _start(["log", "-1", "--format=%ct"], directory)

    code, out, err = _finish(rev)
    results = [_finish(p) for p in (status, describe, when)]
    if code != 0:
        if "dubious ownership" in err:
            raise _dubious(err, directory)
        return GitState(available=False, reason="not a git repository")
    lines = out.decode("utf-8", errors="surrogateescape").splitlines()
    git_dir, toplevel = Path(lines[0]), Path(lines[1]) if len(lines) > 1 else directory
    shallow = len(lines) > 2 and lines[2] == "true"

    (s_code, s_out, s_err), (d_code, d_out, _), (t_code, t_out, _) = results
    if s_code != 0:
        if "dubious ownership" in s_err:
            raise _dubious(s_err, directory)
        raise GitError(f"git status failed in {toplevel}: {s_err.strip()}")
    base = relative_to_toplevel(directory, toplevel) or ""
    prefixes = [_join(base, e.strip("/")) for e in exclude]
    for path in exclude_paths:
        rel = relative_to_toplevel(path, toplevel)
        if rel is not None:
            prefixes.append(rel)
    oid, branch, changes = parse_status(s_out, untracked=include_untracked, excludes=prefixes)
    describe_text = d_out.decode("utf-8", errors="replace").strip() if d_code == 0 else None
    commit_time = int(t_out.strip()) if t_code == 0 and t_out.strip().isdigit() else None
    return GitState(
        available=True,
        sha=oid or UNKNOWN,
        dirty=bool(changes),
        branch=branch,
        describe=describe_text or None,
        commit_time=commit_time,
        toplevel=toplevel,
        git_dir=git_dir,
        shallow=shallow,
        changes=tuple(changes),
    )


def _join(base: str, rel: str) -> str:
    return rel if base in ("", ".") else f"{base}/{rel}"


def relative_to_toplevel(path: Path, toplevel: Path) -> str | None:
    """`path` as a slash path under `toplevel`, or None if it is outside (links resolved)."""
    return relative_path(resolve_path(path), resolve_path(toplevel))


def hooks_dir(directory: Path) -> Path:
    """Where git runs hooks from for this checkout (honours core.hooksPath)."""
    import git  # GitPython: slow to import, so only here

    try:
        repo = git.Repo(directory, search_parent_directories=True)
    except (git.InvalidGitRepositoryError, git.NoSuchPathError):
        raise GitError(f"{directory} is not inside a git repository") from None
    reader = repo.config_reader()
    configured = reader.get_value("core", "hooksPath", default="")
    if configured:
        base = Path(repo.working_tree_dir or directory)
        return resolve_path(base / os.path.expanduser(str(configured)))
    return Path(repo.common_dir) / "hooks"
