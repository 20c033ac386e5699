"""-v, -q and --config work after the command too (SPEC section 3; issue 11, item 7)."""

from __future__ import annotations

import os

import pytest

from tests.support import GitRepo, Stamp


def test_quiet_after_a_group_subcommand(repo: GitRepo, stamp: Stamp) -> None:
    os.chdir(repo.path)
    code, out, err = stamp("hooks", "install", "-q")
    assert (code, out, err) == (0, "", "")
    assert (repo.path / ".git" / "hooks" / "pre-commit").is_file()


def test_config_after_the_command(repo: GitRepo, stamp: Stamp) -> None:
    os.chdir(repo.path)
    (repo.path / "elsewhere.toml").write_text('output_dir = "gen"\n')
    code, _, err = stamp("header", "--config", "elsewhere.toml")
    assert code == 0, err
    assert (repo.path / "gen" / "stamp.h").is_file()


@pytest.mark.parametrize("before", [True, False])
def test_verbose_before_or_after_the_command(repo: GitRepo, stamp: Stamp, before: bool) -> None:
    os.chdir(repo.path)
    (repo.path / "fw.bin").write_bytes(bytes(range(256)))
    args = ["manifest", "fw.bin", "--allow-unstamped"]
    assert stamp(*args)[0] == 0
    code, _, err = stamp("-v", *args) if before else stamp(*args, "-v")
    assert code == 0, err
    assert "already in the history" in err
    assert "already in the history" not in stamp(*args)[2]
