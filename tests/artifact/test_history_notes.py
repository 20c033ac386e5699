"""Builds shared through a real bare git repository as notes (refs/notes/stamp)."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest

from stamp.artifact.history import History, Origin
from stamp.artifact.history.git_notes import NOTES_REF, PullResult, PushResult, pull, push
from stamp.artifact.manifest import Manifest
from stamp.identity import Identity
from tests.artifact.test_history import manifest
from tests.support import GitRepo, make_repo

CI = Origin(host="ci-runner-7", user="runner", ci=True)
NOW = "2026-01-02T00:00:00Z"


@pytest.fixture
def bare(tmp_path: Path) -> Path:
    """A bare repository with one commit, as a git server holds it."""
    seed = make_repo(tmp_path / "seed")
    path = tmp_path / "server.git"
    seed.git("clone", "-q", "--bare", str(seed.path), str(path))
    return path


def clone(bare: Path, path: Path) -> GitRepo:
    repo = GitRepo(path)
    GitRepo(bare.parent).git("clone", "-q", str(bare), str(path))
    return repo


def record(repo: GitRepo, *builds: Manifest, origin: Origin | None = CI) -> None:
    with History.open(repo.path / ".git" / "stamp") as history:
        for build in builds:
            history.append(build, origin)


def do_push(repo: GitRepo, *, include_dirty: bool = False) -> PushResult:
    with History.open(repo.path / ".git" / "stamp") as history:
        return push(history, repo.path, "origin", include_dirty=include_dirty)


def do_pull(repo: GitRepo) -> PullResult:
    with History.open(repo.path / ".git" / "stamp") as history:
        return pull(history, repo.path, "origin", NOW)


def builds_in(repo: GitRepo) -> dict[int | None, Origin | None]:
    with History.open(repo.path / ".git" / "stamp") as history:
        return {b.manifest.identity.edit: b.origin for b in history.newest()}


def server_note_lines(bare: Path, commit: str) -> list[str]:
    text = GitRepo(bare).git("notes", f"--ref={NOTES_REF}", "show", commit)
    return text.splitlines()


def test_push_then_pull_carries_builds_and_their_origin(bare: Path, tmp_path: Path) -> None:
    a, b = clone(bare, tmp_path / "a"), clone(bare, tmp_path / "b")
    head = a.head
    record(a, manifest(1, git=head), manifest(2, git=head))
    record(a, manifest(3, git=head, dirty=True))
    result = do_push(a)
    assert (result.builds, result.dirty_left, result.changed_remote) == (2, 1, True)
    lines = server_note_lines(bare, head)
    assert len(lines) == 2 and all(json.loads(line)["origin"]["ci"] for line in lines)

    pulled = do_pull(b)
    assert (pulled.new_builds, pulled.seen, pulled.unreadable) == (2, 2, 0)
    assert builds_in(b) == {2: CI, 1: CI}
    with History.open(b.path / ".git" / "stamp") as history:
        found = history.candidates(Identity(image_sha256=f"{1:064x}"))
        assert [(x.pulled_from, x.pulled_at) for x in found] == [("origin", NOW)]
        assert history.newest_local() is None  # pulled builds are not this checkout's own

    # Idempotent: nothing new either way, no duplicate lines.
    again = do_push(a)
    assert (again.builds, again.changed_remote, again.commits) == (2, False, 0)
    assert do_pull(b).new_builds == 0
    assert server_note_lines(bare, head) == lines

    # Dirty builds go only when asked, and arrive marked dirty.
    assert do_push(a, include_dirty=True).builds == 3
    assert do_pull(b).new_builds == 1
    with History.open(b.path / ".git" / "stamp") as history:
        dirty = history.with_edit(3)
        assert [x.manifest.identity.dirty for x in dirty] == [True]


def test_pulled_builds_go_back_unchanged(bare: Path, tmp_path: Path) -> None:
    """B pushes what it pulled from A: the union holds each build once."""
    a, b = clone(bare, tmp_path / "a"), clone(bare, tmp_path / "b")
    record(a, manifest(1, git=a.head))
    do_push(a)
    do_pull(b)
    record(b, manifest(2, git=b.head), origin=Origin("laptop", "ana", False))
    do_push(b)
    lines = server_note_lines(bare, a.head)
    assert len(lines) == 2
    assert do_pull(a).new_builds == 1
    assert set(builds_in(a)) == {1, 2}


def test_concurrent_pushes_from_two_clones_both_survive(bare: Path, tmp_path: Path) -> None:
    a, c = clone(bare, tmp_path / "a"), clone(bare, tmp_path / "c")
    head = a.head
    c.write("other.c", "int other;\n")
    other_commit = c.commit("on c")
    c.git("push", "-q", "origin", "HEAD:refs/heads/c")
    for round_number in range(3):  # each round races two pushes to one server
        base = 10 * round_number
        record(a, manifest(base + 1, git=head))  # same commit as c's: the notes must merge
        record(c, manifest(base + 2, git=head), manifest(base + 3, git=other_commit))
        results: dict[str, PushResult | BaseException] = {}

        def run(
            name: str, repo: GitRepo, results: dict[str, PushResult | BaseException] = results
        ) -> None:
            try:
                results[name] = do_push(repo)
            except BaseException as exc:  # reported below
                results[name] = exc

        threads = [threading.Thread(target=run, args=(n, r)) for n, r in (("a", a), ("c", c))]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert all(isinstance(r, PushResult) for r in results.values()), results
    fresh = clone(bare, tmp_path / "fresh")
    do_pull(fresh)
    expected = {base + k for base in (0, 10, 20) for k in (1, 2, 3)}
    assert set(builds_in(fresh)) == expected
    assert len(server_note_lines(bare, head)) == 6  # no duplicates


def test_unreachable_remote_is_exit_3(tmp_path: Path) -> None:
    from stamp.errors import RemoteError

    repo = make_repo(tmp_path / "lonely")
    repo.git("remote", "add", "origin", str(tmp_path / "does-not-exist.git"))
    record(repo, manifest(1, git=repo.head))
    with pytest.raises(RemoteError) as caught:
        do_push(repo)
    assert caught.value.exit_code == 3
    assert "origin" in str(caught.value) and "\n" not in str(caught.value)


def test_a_push_that_loses_the_race_merges_and_retries(
    bare: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """C pushes between A's fetch and A's push: A's first push is refused, its retry wins."""
    from stamp.artifact.history import git_notes as notes

    a, c = clone(bare, tmp_path / "a"), clone(bare, tmp_path / "c")
    record(a, manifest(1, git=a.head))
    record(c, manifest(2, git=c.head))
    original = notes._fetch_and_merge
    interleaved: list[PushResult] = []

    def fetch_then_let_c_push(git: notes._Git) -> str | None:
        tip = original(git)
        if git.repo == a.path and not interleaved:
            monkeypatch.setattr(notes, "_fetch_and_merge", original)
            interleaved.append(do_push(c))
            monkeypatch.setattr(notes, "_fetch_and_merge", fetch_then_let_c_push)
        return tip

    monkeypatch.setattr(notes, "_fetch_and_merge", fetch_then_let_c_push)
    result = do_push(a)
    assert [r.changed_remote for r in interleaved] == [True]
    assert result.attempts == 2 and result.changed_remote
    assert len(server_note_lines(bare, a.head)) == 2


def test_outside_git_is_a_usage_error(tmp_path: Path) -> None:
    from stamp.errors import StampError

    with History.open(tmp_path / "state") as history, pytest.raises(StampError) as caught:
        push(history, tmp_path, "origin", include_dirty=False)
    assert caught.value.exit_code == 2 and "not in a git repository" in str(caught.value)


def test_a_note_too_large_is_neither_read_nor_overwritten(
    bare: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from stamp.artifact.history import git_notes as notes

    a, b = clone(bare, tmp_path / "a"), clone(bare, tmp_path / "b")
    record(a, manifest(1, git=a.head))
    do_push(a)
    before = server_note_lines(bare, a.head)
    monkeypatch.setattr(notes, "MAX_NOTE_BYTES", 100)  # the real note is ~700 bytes
    assert do_pull(b).new_builds == 0
    record(b, manifest(2, git=b.head))
    assert do_push(b).commits == 0  # its line is not forced into the note it cannot read
    assert server_note_lines(bare, a.head) == before
