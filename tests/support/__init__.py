"""Shared test helpers: real git repositories in tmp dirs, required tools, running stamp."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent.parent
# Beside the repository (/work/main -> /work/shared); a worktree under /work/wt/NAME finds
# it one level further up.
FIXTURES = next(
    (d / "shared" / "fixtures" for d in REPO_ROOT.parents if (d / "shared" / "fixtures").is_dir()),
    REPO_ROOT.parent / "shared" / "fixtures",
)
EXAMPLE = REPO_ROOT / "examples" / "cortex-m3"

Stamp = Callable[..., tuple[int, str, str]]
"""The `stamp` fixture (tests/conftest.py): run the CLI in-process, (exit code, out, err)."""


def require_tool(name: str) -> str:
    """The path of `name`; fails the test loudly (never skips) when it is missing.

    `make test` installs the ARM toolchain and QEMU when it runs as root; anywhere else
    a missing tool is a failure the developer must see.
    """
    path = shutil.which(name)
    if path is None:
        pytest.fail(f"{name} is not installed: run `make test` as root, or install it", False)
    return path


def git_env() -> dict[str, str]:
    """An environment for test git commands: no user config, fixed identity and dates."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("GIT_")}
    env.update(
        GIT_CONFIG_GLOBAL="/dev/null",
        GIT_CONFIG_NOSYSTEM="1",
        GIT_AUTHOR_NAME="Test",
        GIT_AUTHOR_EMAIL="test@example.invalid",
        GIT_COMMITTER_NAME="Test",
        GIT_COMMITTER_EMAIL="test@example.invalid",
        GIT_AUTHOR_DATE="2026-01-01T00:00:00Z",
        GIT_COMMITTER_DATE="2026-01-01T00:00:00Z",
    )
    return env


@dataclass
class GitRepo:
    """A real git repository in a temp directory (after vcs_versioning's WorkDir)."""

    path: Path

    def git(self, *args: str, check: bool = True) -> str:
        done = subprocess.run(
            ["git", *args],
            cwd=self.path,
            env=git_env(),
            capture_output=True,
            text=True,
            check=False,
        )
        if check and done.returncode != 0:
            raise AssertionError(f"git {' '.join(args)} failed: {done.stderr}")
        return done.stdout.strip()

    def write(self, name: str, text: str) -> Path:
        target = self.path / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text)
        return target

    def commit(self, message: str = "commit", *, add_all: bool = True) -> str:
        if add_all:
            self.git("add", "-A")
        self.git("commit", "-q", "--allow-empty", "-m", message)
        return self.git("rev-parse", "HEAD")

    @property
    def head(self) -> str:
        return self.git("rev-parse", "HEAD")


def make_repo(path: Path, files: dict[str, str] | None = None) -> GitRepo:
    """A new repository at `path` with `files` committed (a main.c by default)."""
    path.mkdir(parents=True, exist_ok=True)
    repo = GitRepo(path)
    repo.git("init", "-q", "-b", "main")
    for name, text in (files or {"main.c": "int main(void) { return 0; }\n"}).items():
        repo.write(name, text)
    repo.commit("initial")
    return repo


def run_stamp(
    *args: str,
    cwd: Path,
    env: dict[str, str] | None = None,
    timeout: float = 120,
    input: str | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run `python -m stamp ARGS` as a whole process (the way users and Makefiles do)."""
    full_env = git_env()
    full_env.pop("GIT_AUTHOR_DATE", None)
    full_env.pop("GIT_COMMITTER_DATE", None)
    full_env["NO_COLOR"] = "1"
    if env:
        full_env.update(env)
    return subprocess.run(
        [sys.executable, "-m", "stamp", *args],
        cwd=cwd,
        env=full_env,
        capture_output=True,
        text=True,
        timeout=timeout,
        input=input,
        check=False,
    )


def spawn_stamp(*args: str, cwd: Path, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    """Start `python -m stamp ARGS` in the background (text pipes, no stdin, no colour);
    the caller stops it (tests/cloud_support.stop_process, or communicate)."""
    return subprocess.Popen(
        [sys.executable, "-m", "stamp", *args],
        cwd=cwd,
        env={**git_env(), "NO_COLOR": "1", **(env or {})},
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
