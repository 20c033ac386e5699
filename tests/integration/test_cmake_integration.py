"""The README's CMake snippet, verbatim, with stamp.cmake from the installed wheel."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

from tests.support import REPO_ROOT, GitRepo, make_repo, require_tool
from tests.support.wheel import InstalledStamp

MAIN_C = """\
#include <stdio.h>
#include "stamp.h"
int main(void) { char line[200]; stamp_report(line, sizeof line); puts(line); return 0; }
"""


def readme_cmake() -> str:
    readme = (REPO_ROOT / "README.md").read_text()
    section = readme.split("### CMake", 1)[1]
    return re.findall(r"```cmake\n(.*?)```", section, flags=re.S)[0]


def cmake(repo: GitRepo, stamp: InstalledStamp, *args: str, on_path: bool = True) -> str:
    # `stamp` as the README writes it: found on PATH (the wheel's virtual environment).
    done = subprocess.run(
        ["cmake", *args],
        cwd=repo.path,
        env=stamp.env(on_path=on_path),
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def readme_cmake_project(tmp_path: Path) -> GitRepo:
    """A C project whose CMakeLists.txt is the README's snippet, in a git repository."""
    require_tool("cmake")
    require_tool("gcc")
    cmakelists = "cmake_minimum_required(VERSION 3.20)\nproject(app C)\n" + readme_cmake()
    return make_repo(
        tmp_path / "fw",
        {"CMakeLists.txt": cmakelists, "main.c": MAIN_C, ".gitignore": "build/\n"},
    )


def test_readme_cmake_snippet(tmp_path: Path, installed_stamp: InstalledStamp) -> None:
    repo = readme_cmake_project(tmp_path)
    cmake(repo, installed_stamp, "-S", ".", "-B", "build")
    first = cmake(repo, installed_stamp, "--build", "build")
    assert "Building C object CMakeFiles/app.elf.dir/stamp/stamp.c.o" in first
    run = subprocess.run([str(repo.path / "build/app.elf")], capture_output=True, text=True)
    assert run.stdout == f'@stamp {{"edit":1,"git":"{repo.head}","dirty":false}}\n'
    manifest = (repo.path / "build/app.stamp.json").read_text()
    assert '"edit": 1' in manifest and repo.head in manifest

    second = cmake(repo, installed_stamp, "--build", "build")
    assert "Building" not in second and "stamp: unchanged (edit 1)" in second

    repo.write("main.c", MAIN_C.replace("200", "256"))
    third = cmake(repo, installed_stamp, "--build", "build")
    assert "main.c.o" in third and "stamp.c.o" in third
    assert (
        '"edit":2,'
        in subprocess.run([str(repo.path / "build/app.elf")], capture_output=True, text=True).stdout
    )


def test_readme_cmake_snippet_with_stamp_given_by_path(
    tmp_path: Path, installed_stamp: InstalledStamp
) -> None:
    # The README: "If `stamp` is not on PATH, give its path: -DSTAMP_EXECUTABLE=...".
    repo = readme_cmake_project(tmp_path)
    given = f"-DSTAMP_EXECUTABLE={installed_stamp.stamp}"
    cmake(repo, installed_stamp, "-S", ".", "-B", "build", given, on_path=False)
    cmake(repo, installed_stamp, "--build", "build", on_path=False)
    assert '"edit": 1' in (repo.path / "build/app.stamp.json").read_text()
