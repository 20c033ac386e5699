"""The installed package carries the build integration files (issue 11, items 5 and 10)."""

from __future__ import annotations

import re

from tests.support import REPO_ROOT
from tests.support.wheel import InstalledStamp


def test_hooks_path_points_into_the_installed_package(installed_stamp: InstalledStamp) -> None:
    where = installed_stamp.hooks_path()
    assert where.is_relative_to(installed_stamp.venv) and "site-packages" in where.parts
    for name in ("stamp.mk", "stamp.cmake"):
        # The top-level hooks/ is the source of truth; the package ships it unchanged.
        assert (where / name).read_bytes() == (REPO_ROOT / "hooks" / name).read_bytes()


def test_templates_are_installed(installed_stamp: InstalledStamp) -> None:
    site = installed_stamp.hooks_path().parent
    assert (site / "templates" / "default" / "stamp.c.j2").is_file()
    assert (site / "templates" / "header-only" / "stamp.h.j2").is_file()


def test_building_the_package_warns_about_nothing(installed_stamp: InstalledStamp) -> None:
    log = installed_stamp.build_log
    assert "setuptools" in log.lower()  # the build backend's output is in the log
    warnings = re.findall(r"^.*(?:Deprecat|_Warning|absent from).*$", log, flags=re.M)
    assert warnings == []
