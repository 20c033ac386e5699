"""The README's Make lines, verbatim, in a third-party-style recursive firmware Makefile.

stamp comes from its wheel in a fresh virtual environment (`include $(shell stamp hooks
path)/stamp.mk`), the firmware is built by arm-none-eabi-gcc with `--gc-sections` and the
README's linker lines, and the dependency line stands before `all:` (issue 11, items 1, 5
and 10).
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from tests.support import REPO_ROOT, GitRepo, make_repo, require_tool
from tests.support.wheel import InstalledStamp

README = (REPO_ROOT / "README.md").read_text()


def readme_block(section: str, language: str) -> str:
    text = README.split(section + "\n", 1)[1].split("\n### ", 1)[0]
    return re.findall(rf"```{language}\n(.*?)```", text, flags=re.S)[0]


TOP_MAKEFILE = """\
# Vendor firmware: objects under build/obj, a library made by a sub-make.
CC      := arm-none-eabi-gcc
AR      := arm-none-eabi-ar
OBJCOPY := arm-none-eabi-objcopy
CPU     := -mcpu=cortex-m3 -mthumb
CFLAGS  := $(CPU) -Os -Wall -Werror -ffunction-sections -fdata-sections
LDFLAGS := $(CPU) -nostdlib -T app.ld -Wl,--gc-sections -Wl,--build-id
SRCS    := src/vectors.c src/main.c src/util.c
OBJS     = $(patsubst %.c,build/obj/%.o,$(SRCS))

{snippet}
all: build/app.elf build/app.bin $(STAMP_MANIFEST)

build/app.elf: $(OBJS) lib/libring.a app.ld
\t$(CC) $(LDFLAGS) $(OBJS) -Llib -lring -lgcc -o $@

build/app.bin: build/app.elf
\t$(OBJCOPY) -O binary $< $@

build/obj/%.o: %.c
\t@mkdir -p $(@D)
\t$(CC) $(CFLAGS) -c $< -o $@

lib/libring.a: FORCE
\t$(MAKE) -C lib

FORCE:
.PHONY: all FORCE
"""

LIB_MAKEFILE = """\
libring.a: ring.o
\tarm-none-eabi-ar rcs $@ $^
ring.o: ring.c
\tarm-none-eabi-gcc -mcpu=cortex-m3 -mthumb -Os -c $< -o $@
"""

LINKER_SCRIPT = """\
MEMORY {{
  FLASH (rx) : ORIGIN = 0x00000000, LENGTH = 256K
  RAM (rwx)  : ORIGIN = 0x20000000, LENGTH = 64K
}}
ENTRY(reset_handler)
SECTIONS {{
  .text : {{ KEEP(*(.isr_vector)) *(.text*) *(.rodata*) . = ALIGN(4); }} > FLASH
{lines}
  .data : {{ *(.data*) }} > RAM AT> FLASH
  .bss (NOLOAD) : {{ *(.bss*) *(COMMON) }} > RAM
}}
"""

SOURCES = {
    "src/vectors.c": """\
void reset_handler(void);
__attribute__((section(".isr_vector"), used))
void (*const vectors[])(void) = {(void (*)(void))0x20010000, reset_handler};
""",
    "src/main.c": """\
#include "stamp.h"
int helper(void);
int ring_next(int);
volatile char line[160];
void reset_handler(void)
{
    stamp_report((char *)line, sizeof line);
    for (;;) {
        line[0] = (char)(helper() + ring_next(1));
    }
}
""",
    "src/util.c": "int helper(void) { return 1; }\n",
    "lib/ring.c": "int ring_next(int i) { return i + 1; }\n",
    "lib/Makefile": LIB_MAKEFILE,
    ".gitignore": "build/\n*.o\n*.a\n",
}


def vendor_project(path: Path, snippet: str | None = None) -> GitRepo:
    files = dict(SOURCES)
    files["Makefile"] = TOP_MAKEFILE.replace(
        "{snippet}", snippet or readme_block("### Make", "make")
    )
    files["app.ld"] = LINKER_SCRIPT.format(lines=readme_block("### Make", "ld"))
    return make_repo(path, files)


def make(
    repo: GitRepo, stamp: InstalledStamp, *args: str, on_path: bool = True, ok: bool = True
) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        ["make", "--no-print-directory", *args],
        cwd=repo.path,
        env=stamp.env(on_path=on_path),
        capture_output=True,
        text=True,
        check=False,
    )
    if ok:
        assert done.returncode == 0, done.stdout + done.stderr
    return done


def compiled(output: str) -> list[str]:
    return sorted(re.findall(r" -c (\S+\.c) ", output))


@pytest.fixture
def tools() -> None:
    for tool in ("make", "arm-none-eabi-gcc", "arm-none-eabi-objcopy"):
        require_tool(tool)


def test_default_goal_and_incremental_builds(
    tmp_path: Path, installed_stamp: InstalledStamp, tools: None
) -> None:
    repo = vendor_project(tmp_path / "fw")
    makefile = (repo.path / "Makefile").read_text()
    assert makefile.index("stamp_needed_by") < makefile.index("\nall:")  # the order

    first = make(repo, installed_stamp)  # no goal: the Makefile's own `all`
    assert compiled(first.stdout) == sorted(
        ["build/stamp/stamp.c", "src/main.c", "src/util.c", "src/vectors.c", "ring.c"]
    )
    manifest = (repo.path / "build/app.stamp.json").read_text()
    assert '"edit": 1' in manifest and repo.head in manifest

    second = make(repo, installed_stamp)
    assert compiled(second.stdout) == []
    assert "stamp: unchanged (edit 1)" in second.stdout + second.stderr

    repo.write("src/util.c", "int helper(void) { return 2; }\n")
    third = make(repo, installed_stamp)
    assert compiled(third.stdout) == ["build/stamp/stamp.c", "src/util.c"]
    assert '"edit": 2' in (repo.path / "build/app.stamp.json").read_text()


def test_flash_verify_without_device_stops_before_building(
    tmp_path: Path, installed_stamp: InstalledStamp, tools: None
) -> None:
    repo = vendor_project(tmp_path / "fw")
    done = make(repo, installed_stamp, "flash-verify", ok=False)
    assert done.returncode == 2
    assert "make flash-verify DEVICE=" in done.stderr
    assert compiled(done.stdout) == [] and not (repo.path / "build").exists()


def test_stamp_not_on_path_says_how_to_set_it(
    tmp_path: Path, installed_stamp: InstalledStamp, tools: None
) -> None:
    hooks = installed_stamp.hooks_path()
    snippet = readme_block("### Make", "make").replace("$(shell $(STAMP) hooks path)", str(hooks))
    assert str(hooks) in snippet
    repo = vendor_project(tmp_path / "fw", snippet)
    done = make(repo, installed_stamp, on_path=False, ok=False)
    assert done.returncode != 0
    assert "cannot run 'stamp'" in done.stderr and "STAMP=" in done.stderr
    make(repo, installed_stamp, f"STAMP={installed_stamp.stamp}", on_path=False)
    assert (repo.path / "build/app.stamp.json").is_file()


def test_readme_and_stamp_mk_show_the_same_dependency_line() -> None:
    snippet_lines = readme_block("### Make", "make").splitlines()
    (dependency,) = [line for line in snippet_lines if "$(OBJS)" in line]
    code = dependency.split("#")[0].strip()
    stamp_mk = (REPO_ROOT / "hooks" / "stamp.mk").read_text()
    assert f"#   {code}" in stamp_mk


def test_dependency_line_before_objs_is_defined_warns(
    tmp_path: Path, installed_stamp: InstalledStamp, tools: None
) -> None:
    repo = vendor_project(tmp_path / "fw")
    objs = "OBJS     = $(patsubst %.c,build/obj/%.o,$(SRCS))\n"
    makefile = (repo.path / "Makefile").read_text().replace(objs, "")
    repo.write("Makefile", makefile.replace("\nall:", f"\n{objs}\nall:"))
    done = make(repo, installed_stamp, "-n")
    assert "stamp_needed_by got no objects: call it after OBJS" in done.stderr
    assert "no objects" not in make(vendor_project(tmp_path / "ok"), installed_stamp, "-n").stderr


def test_manifest_command_is_echoed_without_the_snippets_comment_spaces(
    tmp_path: Path, installed_stamp: InstalledStamp, tools: None
) -> None:
    snippet = readme_block("### Make", "make")
    assert re.search(r"STAMP_ELF := build/app.elf +#", snippet)  # the spaces are in the value
    done = make(vendor_project(tmp_path / "fw"), installed_stamp)
    assert "stamp manifest build/app.elf --bin build/app.bin -o build/app.stamp.json\n" in (
        done.stdout
    )


def test_readme_snippet_verbatim_with_stamp_given_by_path(
    tmp_path: Path, installed_stamp: InstalledStamp, tools: None
) -> None:
    # The README: "If `stamp` is not on PATH, give its path: make STAMP=..." -- the include
    # line must find stamp.mk through that same command.
    repo = vendor_project(tmp_path / "fw")
    make(repo, installed_stamp, f"STAMP={installed_stamp.stamp}", on_path=False)
    assert '"edit": 1' in (repo.path / "build/app.stamp.json").read_text()
