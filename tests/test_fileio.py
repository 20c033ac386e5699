"""Files stamp writes get the mode a plain write would: 0666 less the umask (issue 11, item 6)."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from stamp.fileio import atomic_write, current_umask
from tests.support import GitRepo, run_stamp


@pytest.fixture
def umask_022() -> Iterator[None]:
    old = os.umask(0o022)
    yield
    os.umask(old)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_new_and_replaced_files_follow_the_umask(tmp_path: Path) -> None:
    old = os.umask(0o027)
    try:
        target = tmp_path / "out" / "stamp.c"
        atomic_write(target, b"one")
        assert _mode(target) == 0o640
        atomic_write(target, b"two")  # replaced atomically: still not 0600
        assert _mode(target) == 0o640
        assert current_umask() == 0o027
        target.chmod(0o604)  # a mode the user chose survives a rewrite, as with open("w")
        atomic_write(target, b"three")
        assert _mode(target) == 0o604
    finally:
        os.umask(old)
    plain = tmp_path / "plain"
    plain.write_bytes(b"x")
    atomic_write(tmp_path / "atomic", b"x")
    assert _mode(tmp_path / "atomic") == _mode(plain)


def test_generated_files_state_and_manifest_are_readable(repo: GitRepo, umask_022: None) -> None:
    done = run_stamp("header", cwd=repo.path)
    assert done.returncode == 0, done.stderr
    for generated in (repo.path / "build" / "stamp").iterdir():
        assert _mode(generated) == 0o644, generated
    state = [p for p in (repo.path / ".git" / "stamp").iterdir() if p.suffix == ".json"]
    assert state and all(_mode(p) == 0o644 for p in state)


def test_relative_path(tmp_path: Path) -> None:
    from stamp.fileio import relative_path

    inside = tmp_path / "a" / "b.txt"
    assert relative_path(inside, tmp_path) == "a/b.txt"
    assert relative_path(tmp_path, tmp_path) == "."
    assert relative_path(tmp_path / "a" / ".." / "c", tmp_path) == "c"
    assert relative_path(tmp_path / "..x", tmp_path) == "..x"  # a name, not a parent
    assert relative_path(tmp_path.parent / "other", tmp_path) is None
    assert relative_path(tmp_path.parent / "other", tmp_path, walk_up=True) == "../other"
