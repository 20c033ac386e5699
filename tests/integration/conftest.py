"""Fixtures shared by the integration tests."""

from __future__ import annotations

import pytest

from tests.support.wheel import InstalledStamp, install_wheel


@pytest.fixture(scope="session")
def installed_stamp(tmp_path_factory: pytest.TempPathFactory) -> InstalledStamp:
    """stamp installed from its wheel (non-editable) in a fresh virtual environment."""
    return install_wheel(tmp_path_factory.mktemp("wheel"))
