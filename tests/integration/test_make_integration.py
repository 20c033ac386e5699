"""hooks/stamp.mk in a real C project built by make with host gcc: no needless rebuilds."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from tests.support import REPO_ROOT, GitRepo, git_env, make_repo, require_tool

MAKEFILE = f"""\
STAMP := {sys.executable} -m stamp
include {REPO_ROOT}/hooks/stamp.mk

CFLAGS += -Wall -Werror $(STAMP_CFLAGS)
SRCS := main.c util.c $(STAMP_C)
OBJS := $(patsubst %.c,build/obj/%.o,$(notdir $(SRCS)))

build/app: $(OBJS)
\t@echo LINK $@
\t@$(CC) $^ -o $@

build/obj/%.o: %.c $(STAMP_H) | build/obj
\t@echo CC $<
\t@$(CC) $(CFLAGS) -c $< -o $@

build/obj/stamp.o: $(STAMP_C) $(STAMP_H) | build/obj
\t@echo CC $<
\t@$(CC) $(CFLAGS) -c $< -o $@

build/obj:
\t@mkdir -p $@
"""

MAIN_C = """\
#include <stdio.h>
#include "stamp.h"
int helper(void);
int main(void) {
    char line[200];
    stamp_report(line, sizeof line);
    printf("%s %d\\n", line, helper());
    return 0;
}
"""


def make(repo: GitRepo, *args: str) -> list[str]:
    env = git_env()
    env.pop("GIT_AUTHOR_DATE")
    env.pop("GIT_COMMITTER_DATE")
    done = subprocess.run(
        ["make", "--no-print-directory", *args],
        cwd=repo.path,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return [line for line in done.stdout.splitlines() if line.startswith(("CC ", "LINK "))]


def run_app(repo: GitRepo) -> str:
    return subprocess.run(
        [str(repo.path / "build/app")], capture_output=True, text=True, check=True
    ).stdout


def test_incremental_builds(tmp_path: Path) -> None:
    require_tool("gcc")
    require_tool("make")
    repo = make_repo(
        tmp_path / "fw",
        {
            "Makefile": MAKEFILE,
            "main.c": MAIN_C,
            "util.c": "int helper(void) { return 1; }\n",
            ".gitignore": "build/\n",
        },
    )
    first = make(repo, "-j4")
    assert sorted(first) == sorted(
        ["CC main.c", "CC util.c", "CC build/stamp/stamp.c", "LINK build/app"]
    )
    out = run_app(repo)
    assert re.fullmatch(rf'@stamp {{"edit":1,"git":"{repo.head}","dirty":false}} 1\n', out)

    assert make(repo, "-j4") == []  # nothing changed: nothing compiles

    repo.write("util.c", "int helper(void) { return 2; }\n")
    second = make(repo, "-j4")
    assert sorted(second) == sorted(["CC util.c", "CC build/stamp/stamp.c", "LINK build/app"])
    assert '"edit":2,' in run_app(repo) and '"dirty":true' in run_app(repo)
    assert make(repo, "-j4") == []

    subprocess.run(["rm", "-rf", str(repo.path / "build")], check=True)
    make(repo, "-j4")  # make clean: the counter survives
    assert '"edit":2,' in run_app(repo)
