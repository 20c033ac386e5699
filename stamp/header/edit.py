"""The editVersion: a per-checkout counter that bumps once per change of the source state.

The *source state* is:
- in a git repository: the HEAD commit, plus the path, status and current content of
  every file `git status` reports as differing from HEAD (staged or not, the same; with
  `include_untracked = true` also untracked, not ignored files) — minus stamp's own
  outputs and the configured `exclude` prefixes (default `build/`);
- outside git: the path, size and modification time of every file under the project
  root, minus the same exclusions and hidden directories.

Its SHA-256 is the *fingerprint*. The counter state (`edit.json` in the state directory)
holds the last edit and its fingerprint; it is read and written under an exclusive
`flock`, so 32 concurrent `stamp header` runs bump once, and replaced atomically, so a
`kill -9` leaves the old or the new state. A missing or corrupt state is rebuilt from
the highest edit found anywhere (history, generated files) plus one: a number once
handed out is never reused.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import NamedTuple

from stamp import fileio, logs
from stamp.errors import StateError
from stamp.header.git import Change, is_excluded
from stamp.record import MAX_EDIT

STATE_NAME = "edit.json"
LOCK_NAME = "edit.lock"
STATE_VERSION = 1
# At most 10 digits: no valid edit has more, and int() refuses 4,300-digit strings.
_EDIT_IN_OUTPUT = re.compile(rb"(?:\bedit |STAMP_EDIT_VERSION )(\d{1,10})(?!\d)")


# A NamedTuple, not a dataclass: it is on `stamp header`'s no-op path (see stamp/header/run.py).
class EditState(NamedTuple):
    """What the state file holds."""

    edit: int
    """The last edit number handed out."""
    fingerprint: str
    """The source-state fingerprint it was handed out for."""
    render_key: str = ""
    """Hash of everything the last rendering depended on (see stamp.header.render)."""
    outputs: tuple[tuple[str, str], ...] = ()
    """(path, sha256) of each generated file as last written."""
    shallow_warned: bool = False
    """The one-time shallow-clone warning was shown."""


def fingerprint_git(head: str, changes: Iterable[Change], toplevel: Path) -> str:
    """Fingerprint of a git checkout: HEAD plus each changed path's status and content."""
    digest = hashlib.sha256()
    digest.update(b"git\0" + head.encode() + b"\0")
    # Only paths and content count, not the staged/unstaged status: `git add` alone is
    # not an edit (and a pre-commit hook that stages stamp's files must not bump again).
    for change in sorted(changes, key=lambda c: c.path):
        digest.update(change.path.encode("utf-8", "surrogateescape") + b"\0")
        digest.update(_content_hash(toplevel / change.path) + b"\0")
    return digest.hexdigest()


def _content_hash(path: Path) -> bytes:
    try:
        if path.is_symlink():
            return b"link:" + os.readlink(path).encode("utf-8", "surrogateescape")
        return fileio.sha256_file(path).encode()
    except FileNotFoundError:
        return b"deleted"
    except IsADirectoryError:
        return b"directory"  # a submodule whose checked-out commit moved
    except OSError as exc:
        return f"unreadable:{exc.errno}".encode()


def fingerprint_tree(root: Path, excludes: Sequence[str]) -> str:
    """Fingerprint of a directory outside git: every file's path, size and mtime."""
    digest = hashlib.sha256(b"tree\0")
    prefixes = tuple(e.strip("/") for e in excludes)
    for dirpath, dirnames, filenames in os.walk(root):
        rel_dir = Path(dirpath).relative_to(root).as_posix()
        dirnames[:] = sorted(
            d
            for d in dirnames
            if not d.startswith(".") and not is_excluded(_join(rel_dir, d), prefixes)
        )
        for name in sorted(filenames):
            rel = _join(rel_dir, name)
            if is_excluded(rel, prefixes):
                continue
            try:
                st = os.stat(os.path.join(dirpath, name))
            except OSError:
                continue
            digest.update(f"{rel}\0{st.st_size}\0{st.st_mtime_ns}\0".encode("utf-8", "replace"))
    return digest.hexdigest()


def _join(rel_dir: str, name: str) -> str:
    return name if rel_dir == "." else f"{rel_dir}/{name}"


@contextlib.contextmanager
def locked(state_dir: Path) -> Iterator[None]:
    """Hold the checkout's exclusive stamp lock (serialises concurrent `stamp header`)."""
    with contextlib.ExitStack() as stack:
        try:
            stack.enter_context(fileio.locked(state_dir / LOCK_NAME))
        except OSError as exc:
            raise StateError(
                f"cannot use state directory {state_dir}: {exc.strerror or exc}"
                " (set `state_dir` in the config to a writable place)"
            ) from None
        yield


def load_state(state_dir: Path) -> EditState | None:
    """The saved state, or None when missing or corrupt (then the caller recovers)."""
    path = state_dir / STATE_NAME
    try:
        raw = json.loads(path.read_bytes())
        if raw.get("version") != STATE_VERSION:
            raise ValueError(f"unknown state version {raw.get('version')!r}")
        edit = raw["edit"]
        if isinstance(edit, bool) or not isinstance(edit, int) or edit < 0:
            raise ValueError("bad edit")
        return EditState(
            edit=edit,
            fingerprint=str(raw["fingerprint"]),
            render_key=str(raw.get("render_key", "")),
            outputs=tuple((str(p), str(h)) for p, h in raw.get("outputs", [])),
            shallow_warned=bool(raw.get("shallow_warned", False)),
        )
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, TypeError, AttributeError, RecursionError) as exc:
        logs.warning("stamp.header.edit", "edit state %s is corrupt (%s); recovering it", path, exc)
        return None


def save_state(state_dir: Path, state: EditState) -> None:
    """Replace the state file atomically (temp file, fsync, rename)."""
    from stamp.fileio import atomic_write, remove_stale_temps

    record = {
        "version": STATE_VERSION,
        "edit": state.edit,
        "fingerprint": state.fingerprint,
        "render_key": state.render_key,
        "outputs": [list(item) for item in state.outputs],
        "shallow_warned": state.shallow_warned,
    }
    try:
        remove_stale_temps(state_dir / STATE_NAME)  # callers hold the state lock
        atomic_write(state_dir / STATE_NAME, (json.dumps(record, indent=1) + "\n").encode())
    except OSError as exc:
        raise StateError(f"cannot write edit state in {state_dir}: {exc.strerror or exc}") from None


def highest_known_edit(paths: Iterable[Path], state_dir: Path | None) -> int:
    """The highest edit number visible in generated files and the build history (0 if none)."""
    best = 0
    for path in paths:
        with contextlib.suppress(OSError):
            for match in _EDIT_IN_OUTPUT.finditer(path.read_bytes()[:4096]):
                best = max(best, int(match.group(1)))
    if state_dir is not None:
        # Only here, on recovery, is the history (and sqlite3) imported: never on the no-op path.
        from stamp.artifact.history import highest_edit

        best = max(best, highest_edit(state_dir))
    return best


def next_edit(
    previous: EditState | None,
    fingerprint: str,
    recover: Iterable[Path],
    state_dir: Path | None,
) -> tuple[int, bool]:
    """(edit, bumped): keep the edit when the fingerprint is unchanged, else bump by one."""
    if previous is not None and previous.fingerprint == fingerprint:
        return previous.edit, False
    if previous is not None:
        return previous.edit + 1, True
    recovered = highest_known_edit(recover, state_dir)
    if recovered:
        logs.warning(
            "stamp.header.edit",
            "edit state was missing or corrupt; continuing after edit %d",
            recovered,
        )
    return recovered + 1, True


def check_edit(edit: int, state_dir: Path, out_dir: Path) -> None:
    """StateError when `edit` is past MAX_EDIT: gcc would truncate it to a small number."""
    if edit > MAX_EDIT:
        raise StateError(
            f"edit {edit} does not fit the stamp record (at most {MAX_EDIT}): to start "
            f"again from edit 1, delete {state_dir / STATE_NAME}, the build history in "
            f"{state_dir} and the generated files in {out_dir}"
        )
