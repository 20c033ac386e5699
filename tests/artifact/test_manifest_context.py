"""`stamp manifest` warns about a build from another repository or from before the last
`stamp header` (issue 11, item 9). Real git repositories; Particle module .bins."""

from __future__ import annotations

import os
from pathlib import Path

from stamp.artifact.particle.build import build_user_part
from stamp.record import StampRecord
from tests.support import GitRepo, Stamp, make_repo


def _bin(repo: GitRepo, edit: int, git: str) -> str:
    path = repo.path / "build" / f"app-{edit}.bin"
    path.parent.mkdir(exist_ok=True)
    path.write_bytes(build_user_part(StampRecord(edit=edit, git=git, dirty=False).pack()))
    return str(path.relative_to(repo.path))


def test_a_commit_from_another_repository_is_named(repo: GitRepo, stamp: Stamp) -> None:
    other = make_repo(repo.path.parent / "other", {"other.c": "int x;\n"})
    os.chdir(repo.path)
    code, _, err = stamp("manifest", _bin(repo, 3, other.head))
    assert code == 0, err
    assert f"built from git {other.head[:12]}, which is not a commit of this repository" in err


def test_a_build_from_this_repository_is_quiet(repo: GitRepo, stamp: Stamp) -> None:
    os.chdir(repo.path)
    code, _, err = stamp("manifest", _bin(repo, 1, repo.head))
    assert (code, err) == (0, "")


def test_a_build_older_than_the_last_header_is_named(repo: GitRepo, stamp: Stamp) -> None:
    os.chdir(repo.path)
    assert stamp("header")[0] == 0  # edit 1
    repo.write("main.c", "int main(void) { return 2; }\n")
    assert stamp("header")[0] == 0  # edit 2
    code, _, err = stamp("manifest", _bin(repo, 1, repo.head))
    assert code == 0
    assert "holds edit 1, but this checkout is at edit 2" in err
    assert stamp("manifest", _bin(repo, 2, repo.head))[2] == ""
    assert stamp("-q", "manifest", _bin(repo, 1, repo.head))[2] == ""


def test_a_configured_state_dir_still_names_a_foreign_commit(repo: GitRepo, stamp: Stamp) -> None:
    """With `state_dir` set, git is asked only about the commit (one process either way)."""
    other = make_repo(repo.path.parent / "other", {"other.c": "int x;\n"})
    (repo.path / "stamp.toml").write_text('state_dir = "state"\n')
    os.chdir(repo.path)
    code, _, err = stamp("manifest", _bin(repo, 3, other.head))
    assert code == 0, err
    assert f"built from git {other.head[:12]}, which is not a commit of this repository" in err
    assert (repo.path / "state" / "history.sqlite").is_file()
    assert not (repo.path / ".git" / "stamp" / "history.sqlite").exists()


def test_outside_a_repository_nothing_is_foreign(tmp_path: Path, stamp: Stamp) -> None:
    project = tmp_path / "no-git"
    project.mkdir()
    os.chdir(project)
    path = project / "app.bin"
    path.write_bytes(build_user_part(StampRecord(edit=1, git="ab" * 20, dirty=False).pack()))
    code, _, err = stamp("manifest", "app.bin")
    assert (code, err) == (0, "")
    assert (project / ".stamp" / "history.sqlite").is_file()
