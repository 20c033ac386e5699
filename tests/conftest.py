"""Suite-wide fixtures. Area-specific helpers live in tests/*_support.py."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import pytest

from stamp.cli.app import run
from tests.support import GitRepo, Stamp, make_repo


@pytest.fixture
def repo(tmp_path: Path) -> GitRepo:
    """A fresh git repository with one committed main.c."""
    return make_repo(tmp_path / "repo")


@pytest.fixture(autouse=True)
def _restore_stamp_logger() -> Iterator[None]:
    """Undo `stamp.cli.terminal.setup_logging` after tests that run the CLI in-process.

    It sets `propagate = False` on the "stamp" logger (right for a process, which owns
    its logging), which would otherwise hide stamp's log records from later tests' caplog.
    """
    logger = logging.getLogger("stamp")
    saved = (logger.handlers[:], logger.level, logger.propagate)
    yield
    logger.handlers[:], logger.level, logger.propagate = saved


@pytest.fixture
def stamp(capsys: pytest.CaptureFixture[str]) -> Stamp:
    """Run the CLI in-process: (exit code, stdout, stderr)."""

    def invoke(*args: str | Path) -> tuple[int, str, str]:
        code = run([str(a) for a in args])
        out, err = capsys.readouterr()
        return code, out, err

    return invoke
