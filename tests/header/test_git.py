"""stamp.header.git against real repositories: status parsing, worktrees, shallow clones, no git."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from stamp.header.git import Change, parse_status, read_state
from tests.support import GitRepo, git_env, make_repo

OID = "a" * 40


@pytest.mark.parametrize(
    ("raw", "untracked", "expected"),
    [
        (f"# branch.oid {OID}\0# branch.head main\0", False, (OID, "main", [])),
        ("# branch.oid (initial)\0# branch.head main\0", False, (None, "main", [])),
        (f"# branch.oid {OID}\0# branch.head (detached)\0", False, (OID, None, [])),
        (
            f"# branch.oid {OID}\0# branch.head main\0"
            "1 .M N... 100644 100644 100644 abc abc src/a c.c\0",
            False,
            (OID, "main", [Change("src/a c.c", ".M")]),
        ),
        (
            f"# branch.oid {OID}\0# branch.head main\0"
            "2 R. N... 100644 100644 100644 abc abc R100 new.c\0old.c\0? junk.txt\0",
            False,
            (OID, "main", [Change("new.c", "R.")]),
        ),
        (
            f"# branch.oid {OID}\0# branch.head main\0? junk.txt\0? build/x.o\0",
            True,
            (OID, "main", [Change("junk.txt", "??")]),
        ),
        (
            f"# branch.oid {OID}\0# branch.head main\0"
            "u UU N... 100644 100644 100644 100644 a b c conflict.c\0",
            False,
            (OID, "main", [Change("conflict.c", "UU")]),
        ),
    ],
)
def test_parse_status(
    raw: str, untracked: bool, expected: tuple[str | None, str | None, list[Change]]
) -> None:
    assert parse_status(raw.encode(), untracked=untracked, excludes=["build/"]) == expected


def test_clean_and_dirty(repo: GitRepo) -> None:
    state = read_state(repo.path)
    assert state.available and state.sha == repo.head and state.dirty is False
    assert state.branch == "main" and state.describe is None
    assert state.commit_time == 1767225600  # 2026-01-01T00:00:00Z from tests.support
    repo.write("main.c", "int main(void) { return 1; }\n")
    state = read_state(repo.path)
    assert state.dirty is True and [c.path for c in state.changes] == ["main.c"]


def test_untracked_counts_only_when_configured(repo: GitRepo) -> None:
    repo.write("notes.txt", "scratch\n")
    assert read_state(repo.path).dirty is False
    assert read_state(repo.path, include_untracked=True).dirty is True
    repo.write(".gitignore", "notes.txt\n")
    repo.commit("ignore notes")
    assert read_state(repo.path, include_untracked=True).dirty is False


def test_exclusions_relative_to_directory(repo: GitRepo) -> None:
    repo.write("fw/main.c", "int x;\n")
    repo.write("fw/build/out.c", "int y;\n")
    repo.commit("fw")
    repo.write("fw/build/out.c", "int z;\n")
    assert read_state(repo.path / "fw", exclude=["build/"]).dirty is False
    assert read_state(repo.path, exclude=["build/"]).dirty is True  # repo-root build/ only
    out = repo.path / "fw" / "build"
    assert read_state(repo.path, exclude_paths=[out]).dirty is False


def test_detached_head_and_tags(repo: GitRepo) -> None:
    repo.git("tag", "-a", "v1.0", "-m", "release")
    second = repo.commit("second")
    repo.git("checkout", "-q", "--detach", second)
    state = read_state(repo.path)
    assert state.branch is None
    assert state.describe is not None and state.describe.startswith("v1.0-1-g")


def test_worktree_has_its_own_git_dir(repo: GitRepo, tmp_path: Path) -> None:
    other = tmp_path / "wt"
    repo.git("worktree", "add", "-q", "-b", "feature", str(other))
    main_state = read_state(repo.path)
    wt_state = read_state(other)
    assert wt_state.branch == "feature" and wt_state.sha == main_state.sha
    assert wt_state.git_dir != main_state.git_dir


def test_shallow_clone(repo: GitRepo, tmp_path: Path) -> None:
    repo.commit("second")
    clone = tmp_path / "shallow"
    subprocess.run(
        ["git", "clone", "-q", "--depth", "1", f"file://{repo.path}", str(clone)],
        check=True,
        env=git_env(),
    )
    state = read_state(clone)
    assert state.shallow and state.sha == repo.head


def test_submodule_state(repo: GitRepo, tmp_path: Path) -> None:
    lib = make_repo(tmp_path / "lib", {"lib.c": "int lib;\n"})
    repo.git("-c", "protocol.file.allow=always", "submodule", "add", "-q", str(lib.path), "lib")
    repo.commit("add lib")
    state = read_state(repo.path / "lib")
    assert state.available and state.sha == lib.head
    assert state.git_dir is not None and "modules" in state.git_dir.parts


def test_not_a_repository(tmp_path: Path) -> None:
    state = read_state(tmp_path)
    assert not state.available and state.reason == "not a git repository"
    assert state.sha == "unknown" and state.dirty is None


def test_hook_variables_are_scrubbed(
    repo: GitRepo, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    other = make_repo(tmp_path / "other")
    # A git hook of `other` exports these; they must not redirect stamp's git calls.
    monkeypatch.setenv("GIT_DIR", str(other.path / ".git"))
    monkeypatch.setenv("GIT_INDEX_FILE", str(other.path / ".git" / "index"))
    repo.write("main.c", "changed\n")
    state = read_state(repo.path)
    assert state.sha == repo.head and state.dirty is True
