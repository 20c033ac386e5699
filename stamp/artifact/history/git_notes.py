"""The build history shared through git: builds as notes on the commits they came from.

`stamp history push` writes each build's note line (stamp.artifact.history.note_line) into
the note of its commit under `refs/notes/stamp`, merges the remote's notes into them, and
pushes; `stamp history pull` fetches and merges the remote's notes and records every build
they carry. A note holds one line per build, so git's own `cat_sort_uniq` notes merge
strategy is exactly the union: concatenated, sorted, duplicates dropped. Merging is
therefore idempotent and commutative, and a push that lost a race to another (a
non-fast-forward) fetches, merges and tries again, a bounded number of times.

Builds from a dirty tree are pushed only when asked: their commit is not what was built.
Their manifest's `dirty: true` marks them wherever they arrive. Every git command goes
through stamp.proc.run (an argument list and a timeout).

Libraries considered: GitPython and dulwich can write notes, but git itself is needed
anyway (the remote's transport and credentials are the user's git config), and its notes
merge already implements the union.
"""

from __future__ import annotations

import contextlib
import random
import subprocess
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from stamp import logs
from stamp.artifact.history import History
from stamp.errors import RemoteError, StampError, StateError
from stamp.proc import Completed, run

NOTES_REF = "refs/notes/stamp"
INCOMING_REF = "refs/notes/stamp-incoming"
"""Where the remote's notes are fetched to before they are merged (deleted afterwards)."""
PUSH_ATTEMPTS = 6
"""Fetch-merge-push rounds before a push that keeps losing races gives up."""
NETWORK_TIMEOUT = 120.0
"""Seconds one git fetch, ls-remote or push may take."""
LOCAL_TIMEOUT = 60.0
MAX_NOTE_BYTES = 16 * 1024 * 1024
"""A note larger than this (some 10,000 builds on one commit) is not read: a remote's notes
are outside data, and reading is bounded."""
_FALLBACK_IDENT = ("-c", "user.name=stamp", "-c", "user.email=stamp@localhost")


@dataclass(frozen=True)
class PushResult:
    """What `stamp history push` did."""

    builds: int
    """Builds pushed (every one with a commit in this repository)."""
    commits: int
    """Commits whose note this push changed locally."""
    dirty_left: int
    """Builds from a dirty tree that were not pushed (no --include-dirty)."""
    no_commit: int
    """Builds whose commit is not in this repository (they have nowhere to go)."""
    attempts: int
    """Fetch-merge-push rounds it took."""
    changed_remote: bool
    """The remote's notes changed (False: it already had every build)."""


@dataclass(frozen=True)
class PullResult:
    """What `stamp history pull` did."""

    new_builds: int
    """Builds now in the history that were not before."""
    seen: int
    """Build lines the remote's notes hold."""
    unreadable: int
    """Lines that are not builds this stamp can read (left in the notes)."""
    remote_has_notes: bool
    """The remote had a `refs/notes/stamp` at all."""


class _Git:
    """git in one repository, through stamp.proc.run."""

    def __init__(self, repo: Path, remote: str) -> None:
        self.repo = repo
        self.remote = remote
        self._ident: tuple[str, ...] | None = None

    def __call__(
        self,
        *args: str,
        timeout: float = LOCAL_TIMEOUT,
        network: bool = False,
        input: bytes | None = None,
    ) -> Completed:
        try:
            return run(["git", *args], cwd=self.repo, timeout=timeout, input=input)
        except subprocess.TimeoutExpired:
            what = f"git {args[0]} with {self.remote}" if network else f"git {args[0]}"
            raise RemoteError(f"{what} did not finish within {timeout:g} s") from None
        except OSError as exc:
            raise RemoteError(f"cannot run git: {exc.strerror or exc}") from None

    def checked(self, *args: str) -> str:
        done = self(*args)
        if done.returncode != 0:
            raise StateError(f"git {args[0]} failed in {self.repo}: {_last_line(done)}")
        return done.stdout

    def writing(self, *args: str) -> str:
        """A command that makes a notes commit: with the user's identity, else stamp's."""
        if self._ident is None:  # a CI runner often has no user.name / user.email
            has_ident = self("var", "GIT_COMMITTER_IDENT").returncode == 0
            self._ident = () if has_ident else _FALLBACK_IDENT
        return self.checked(*self._ident, *args)


def _open_git(repo: Path, remote: str) -> _Git:
    git = _Git(repo, remote)
    if git("rev-parse", "--git-dir").returncode != 0:
        raise StampError(
            f"{repo} is not in a git repository: builds are exchanged through one's remote"
        )
    return git


def _last_line(done: Completed) -> str:
    lines = [line for line in (done.stderr or done.stdout).splitlines() if line.strip()]
    return lines[-1].strip() if lines else f"exit status {done.returncode}"


def push(
    history: History, repo: Path, remote: str, *, include_dirty: bool, sleep: bool = True
) -> PushResult:
    """Put every pushable build in the local notes, then union them into `remote`'s."""
    git = _open_git(repo, remote)
    every = history.note_lines()
    wanted = [(commit, line) for commit, dirty, line in every if include_dirty or not dirty]
    present = _existing_commits(git, {commit for commit, _ in wanted})
    by_commit: dict[str, set[str]] = {}
    for commit, line in wanted:
        if commit in present:
            by_commit.setdefault(commit, set()).add(line)
    changed = _add_to_notes(git, by_commit)
    pushed = sum(len(lines) for lines in by_commit.values())
    attempts = 0
    changed_remote = False
    while True:
        attempts += 1
        remote_tip = _fetch_and_merge(git)
        local_tip = _ref(git, NOTES_REF)
        if local_tip is None or local_tip == remote_tip:
            break  # nothing to push, or the remote has it all already
        done = git(
            "push", "--porcelain", remote, f"{NOTES_REF}:{NOTES_REF}",
            network=True, timeout=NETWORK_TIMEOUT,
        )  # fmt: skip
        if done.returncode == 0:
            changed_remote = True
            break
        if not _rejected(done) or attempts >= PUSH_ATTEMPTS:
            raise RemoteError(f"git push to {remote} failed: {_last_line(done)}")
        if sleep:
            time.sleep(random.uniform(0.05, 0.2) * attempts)  # another push won the race
    return PushResult(
        builds=pushed,
        commits=changed,
        dirty_left=len(every) - len(wanted),
        no_commit=len(wanted) - sum(1 for commit, _ in wanted if commit in present),
        attempts=attempts,
        changed_remote=changed_remote,
    )


def pull(history: History, repo: Path, remote: str, pulled_at: str) -> PullResult:
    """Merge `remote`'s notes into the local ones and record every build they carry."""
    git = _open_git(repo, remote)
    remote_tip = _fetch_and_merge(git)
    texts = [text for text in _all_notes(git).values() if text is not None]
    lines = [line for text in texts for line in text.splitlines() if line]
    added, unreadable = history.add_pulled(lines, remote, pulled_at)
    return PullResult(
        new_builds=added,
        seen=len(lines),
        unreadable=unreadable,
        remote_has_notes=remote_tip is not None,
    )


def _ref(git: _Git, ref: str) -> str | None:
    done = git("rev-parse", "--verify", "--quiet", ref)
    return done.stdout.strip() or None if done.returncode == 0 else None


def _fetch_and_merge(git: _Git) -> str | None:
    """Fetch the remote's notes and union them into ours; the remote's tip, if any."""
    listed = git("ls-remote", git.remote, NOTES_REF, network=True, timeout=NETWORK_TIMEOUT)
    if listed.returncode != 0:
        raise RemoteError(f"cannot reach git remote {git.remote}: {_last_line(listed)}")
    if not listed.stdout.strip():
        return None
    fetched = git(
        "fetch", "--quiet", "--no-tags", "--no-write-fetch-head", git.remote,
        f"+{NOTES_REF}:{INCOMING_REF}", network=True, timeout=NETWORK_TIMEOUT,
    )  # fmt: skip
    if fetched.returncode != 0:
        raise RemoteError(f"git fetch from {git.remote} failed: {_last_line(fetched)}")
    try:
        incoming = _ref(git, INCOMING_REF)
        if _ref(git, NOTES_REF) is None:
            git.checked("update-ref", NOTES_REF, INCOMING_REF)
        else:
            try:
                git.writing(
                    "notes", f"--ref={NOTES_REF}", "merge", "--quiet",
                    "--strategy=cat_sort_uniq", INCOMING_REF,
                )  # fmt: skip
            except StateError:
                git("notes", f"--ref={NOTES_REF}", "merge", "--abort")  # leave no merge half-done
                raise
    finally:
        with contextlib.suppress(RemoteError):
            git("update-ref", "-d", INCOMING_REF)
    return incoming


def _rejected(done: Completed) -> bool:
    """A push refused because the remote moved (another push won): worth another round."""
    for line in done.stdout.splitlines():
        flag, _, rest = line.partition("\t")
        if flag == "!" and rest.startswith(f"{NOTES_REF}:"):
            return True
    return False


def _existing_commits(git: _Git, commits: Iterable[str]) -> set[str]:
    """The commits of `commits` that this repository has (one `git cat-file --batch-check`)."""
    wanted = sorted(commits)
    if not wanted:
        return set()
    query = "".join(f"{c}^{{commit}}\n" for c in wanted).encode()
    done = git("cat-file", "--batch-check=%(objectname)", input=query)
    found = {line.strip() for line in done.stdout.splitlines()}
    return {c for c in wanted if c in found}


def _all_notes(git: _Git) -> dict[str, str | None]:
    """commit -> note text of every note under NOTES_REF (None: larger than MAX_NOTE_BYTES,
    left unread and untouched)."""
    if _ref(git, NOTES_REF) is None:
        return {}
    listed = git.checked("notes", f"--ref={NOTES_REF}", "list")
    pairs = [line.split() for line in listed.splitlines() if line.strip()]
    query = "".join(f"{blob}\n" for blob, _ in pairs).encode()
    sizes = git("cat-file", "--batch-check=%(objectsize)", input=query).stdout.split()
    readable = {
        blob for (blob, _), size in zip(pairs, sizes, strict=False) if int(size) <= MAX_NOTE_BYTES
    }
    texts = iter(_blobs(git, [blob for blob, _ in pairs if blob in readable]))
    notes: dict[str, str | None] = {}
    for blob, commit in pairs:
        if blob in readable:
            notes[commit] = next(texts)
        else:
            logs.warning(
                "stamp.history", "the note on %s is too large to be stamp's: skipped", commit
            )
            notes[commit] = None
    return notes


def _blobs(git: _Git, names: Sequence[str]) -> list[str]:
    """The contents of the blobs `names`, in order (one `git cat-file --batch`)."""
    if not names:
        return []
    done = git("cat-file", "--batch", input="".join(f"{n}\n" for n in names).encode())
    if done.returncode != 0:
        raise StateError(f"git cat-file failed in {git.repo}: {_last_line(done)}")
    out, texts, pos = done.out, [], 0
    for _ in names:
        header_end = out.index(b"\n", pos)
        size = int(out[pos:header_end].split()[2])
        texts.append(out[header_end + 1 : header_end + 1 + size].decode("utf-8", "replace"))
        pos = header_end + 1 + size + 1
    return texts


def _add_to_notes(git: _Git, by_commit: dict[str, set[str]]) -> int:
    """Union each commit's lines into its note; the number of notes that changed."""
    import tempfile

    current = _all_notes(git)
    changed = 0
    with tempfile.TemporaryDirectory(prefix="stamp-notes-") as scratch:
        text_file = Path(scratch) / "note"
        for commit, lines in sorted(by_commit.items()):
            if commit in current and current[commit] is None:
                continue  # never overwrite a note it could not read
            have = {line for line in (current.get(commit) or "").splitlines() if line}
            if lines <= have:
                continue
            text_file.write_text("".join(f"{line}\n" for line in sorted(have | lines)))
            git.writing(
                "notes", f"--ref={NOTES_REF}", "add", "--force", "-F", str(text_file), commit
            )
            changed += 1
    return changed
