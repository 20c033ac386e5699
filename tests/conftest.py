"""Suite-wide fixtures. Area-specific helpers live in tests/*_support.py."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support import GitRepo, make_repo


@pytest.fixture
def repo(tmp_path: Path) -> GitRepo:
    """A fresh git repository with one committed main.c."""
    return make_repo(tmp_path / "repo")
