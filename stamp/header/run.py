"""`stamp header`: compute the edit and git state, render the generated files.

The no-op path (nothing changed since the last run) reads git's status, the state file and
the generated files' hashes, and returns without importing Jinja2 or touching any file.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import time
from collections.abc import Mapping
from pathlib import Path
from typing import NamedTuple

from stamp import __version__
from stamp.config import Config
from stamp.errors import GitError
from stamp.fileio import remove_stale_temps
from stamp.header.edit import (
    EditState,
    check_edit,
    fingerprint_git,
    fingerprint_tree,
    load_state,
    locked,
    next_edit,
    save_state,
)
from stamp.header.git import GitState, read_state
from stamp.header.render import (
    file_sha256,
    load_template_set,
    render_all,
    source_date_epoch,
    write_if_changed,
)
from stamp.record import GIT_UNKNOWN, RECORD_LAYOUT, RECORD_SIZE, StampRecord, report_json
from stamp.state_dir import find_state_dir


# Records on `stamp header`'s no-op path are NamedTuples, not dataclasses: importing
# dataclasses (and inspect, ast, dis with it) is a fifth of that path's time on a 2-core
# machine (bench/README.md). They are just as immutable; use `._replace()` to copy.
class HeaderResult(NamedTuple):
    """What `stamp header` did."""

    edit: int
    """The editVersion now in force."""
    git: str
    """HEAD's SHA, or "unknown"."""
    dirty: bool | None
    """Tracked files differ from HEAD; None outside git."""
    branch: str | None
    """Current branch, None when detached or unknown."""
    describe: str | None
    """`git describe --tags`, None without tags."""
    changed: tuple[Path, ...]
    """Generated files that were (re)written; empty on a no-op."""
    outputs: tuple[Path, ...]
    """Every generated file."""
    bumped: bool
    """The edit went up in this run."""
    warnings: tuple[str, ...]
    """Things the user should know (no git, shallow clone)."""

    def to_json(self) -> dict[str, object]:
        """The `--json` record of SPEC section 3."""
        record: dict[str, object] = {
            key: getattr(self, key) for key in ("edit", "git", "dirty", "branch", "describe")
        }
        record["changed"] = [str(p) for p in self.changed]
        return record


def run_header(
    config: Config,
    *,
    output_dir: Path | None = None,
    strict: bool = False,
    env: Mapping[str, str] | None = None,
) -> HeaderResult:
    """Bump the edit if the source state changed and bring the generated files up to date.

    Long because everything between taking and releasing the state lock must happen under
    it, in this order.
    """
    env = os.environ if env is None else env
    out_dir = (output_dir or config.output_path).absolute()
    state = read_state(
        config.root,
        include_untracked=config.include_untracked,
        exclude=config.exclude,
        exclude_paths=[out_dir],
    )
    warnings: list[str] = []
    if state.available:
        fingerprint = fingerprint_git(state.sha, state.changes, state.toplevel or config.root)
    else:
        if strict:
            raise GitError(f"no git state: {state.reason} (drop --strict to stamp without git)")
        warnings.append(f'{state.reason}: git fields are "unknown"')
        fingerprint = _fingerprint_without_git(config, out_dir)

    templates = load_template_set(config.template, config.root)
    state_dir = find_state_dir(config, state.git_dir)
    with locked(state_dir):
        previous = load_state(state_dir)
        existing = [out_dir / name for name, _ in templates.sources]
        edit, bumped = next_edit(previous, fingerprint, existing, state_dir)
        check_edit(edit, state_dir, out_dir)  # before rendering (issue 10)
        if state.shallow and not (previous and previous.shallow_warned):
            warnings.append("this is a shallow clone: `describe` may miss tags")
        context = _context(config, state, edit, env)
        render_key = _render_key(context, templates.digest(), out_dir)
        if (
            previous is not None
            and not bumped
            and previous.render_key == render_key
            and _outputs_intact(previous)
        ):
            changed: list[Path] = []
            hashes = previous.outputs
        else:
            changed, hashes = _write_outputs(render_all(templates, context), out_dir)
        new_state = EditState(
            edit=edit,
            fingerprint=fingerprint,
            render_key=render_key,
            outputs=hashes,
            shallow_warned=state.shallow or bool(previous and previous.shallow_warned),
        )
        if new_state != previous:
            save_state(state_dir, new_state)
    return HeaderResult(
        edit=edit,
        git=state.sha,
        dirty=state.dirty,
        branch=state.branch,
        describe=state.describe,
        changed=tuple(changed),
        outputs=tuple(existing),
        bumped=bumped,
        warnings=tuple(warnings),
    )


def _fingerprint_without_git(config: Config, out_dir: Path) -> str:
    """The source state outside git: the tree's files, stamp's outputs excluded."""
    excludes = [*config.exclude]
    with contextlib.suppress(ValueError):
        excludes.append(out_dir.relative_to(config.root.absolute()).as_posix())
    return fingerprint_tree(config.root, excludes)


def _write_outputs(
    rendered: Mapping[str, bytes], out_dir: Path
) -> tuple[list[Path], tuple[tuple[str, str], ...]]:
    """Write the rendered files whose bytes changed; (the paths written, every output's
    path and SHA-256 for the state)."""
    changed: list[Path] = []
    entries = []
    for name, data in rendered.items():
        path = out_dir / name
        remove_stale_temps(path)  # from a run killed mid-write; the caller holds the lock
        if write_if_changed(path, data):
            changed.append(path)
        entries.append((str(path), hashlib.sha256(data).hexdigest()))
    return changed, tuple(entries)


def _context(
    config: Config, state: GitState, edit: int, env: Mapping[str, str]
) -> dict[str, object]:
    build_time: int | None = None
    if config.build_time:
        build_time = source_date_epoch(env) or int(time.time())
    git_known = state.sha != GIT_UNKNOWN
    return {
        "edit": edit,
        "git": state.sha,
        "git_known": git_known,
        "git_short": state.sha[:8] if git_known else GIT_UNKNOWN,
        "dirty": state.dirty,
        "branch": state.branch,
        "describe": state.describe,
        "commit_time": state.commit_time,
        "build_time": build_time,
        "report_json": report_json(StampRecord(edit, state.sha, state.dirty)),
        "record_layout": RECORD_LAYOUT,
        "record_size": RECORD_SIZE,
        "stamp_version": __version__,
    }


def _render_key(context: Mapping[str, object], templates_digest: str, out_dir: Path) -> str:
    blob = json.dumps(context, sort_keys=True) + templates_digest + str(out_dir)
    return hashlib.sha256(blob.encode()).hexdigest()


def _outputs_intact(previous: EditState) -> bool:
    """Every generated file still holds what was written (not deleted by `make clean`)."""
    return bool(previous.outputs) and all(
        file_sha256(Path(path)) == digest for path, digest in previous.outputs
    )
