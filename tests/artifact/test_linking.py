"""What the linker did with the record: misplaced `.stamp`, and `--gc-sections` (issue 11.2, 11.3).

Real ELFs from arm-none-eabi-gcc; the templates are the ones `stamp header` renders.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from tests.support import GitRepo, Stamp, require_tool
from tests.support.elf import RECORD, build_elf

pytestmark = pytest.mark.toolchain

CPU = ("-mcpu=cortex-m4", "-mthumb")


@pytest.mark.parametrize(
    ("layout", "flags", "said"),
    [
        (
            "stamp_first",
            (),
            "comes before .isr_vector (0x80000a4), at the start of the image, where the vector",
        ),
        ("stamp_overlaps", ("-Wl,--no-check-sections",), "overlaps .text"),
    ],
)
def test_misplaced_stamp_section_is_refused(
    repo: GitRepo, stamp: Stamp, layout: str, flags: tuple[str, ...], said: str
) -> None:
    os.chdir(repo.path)
    build_elf(repo.path / "build", RECORD, layout=layout, extra_flags=flags)
    code, out, err = stamp("manifest", "build/app.elf")
    assert code == 2 and out == ""
    assert said in err and "after the output section that holds the vector table" in err
    assert err.count("\n") == 1
    assert not (repo.path / "build" / "app.stamp.json").exists()


def test_the_usual_layout_is_accepted(repo: GitRepo, stamp: Stamp) -> None:
    os.chdir(repo.path)
    build_elf(repo.path / "build", RECORD, layout="flash_ram")
    assert stamp("manifest", "build/app.elf")[0] == 0


def _link(repo: GitRepo, source: str, *, template: str, suffix: str = ".c") -> Path:
    """Render `template` with stamp header, compile `source` (+ stamp.c) with
    --gc-sections and the toolchain's own linker script (no KEEP for .stamp)."""
    (repo.path / "stamp.toml").write_text(f'template = "{template}"\n')
    done = subprocess.run(
        [os.sys.executable, "-m", "stamp", "header"], cwd=repo.path, capture_output=True
    )
    assert done.returncode == 0, done.stderr
    compiler = require_tool("arm-none-eabi-g++" if suffix == ".cpp" else "arm-none-eabi-gcc")
    app = repo.path / f"app{suffix}"
    app.write_text(source)
    sources = [str(app)]
    if template == "default":
        sources.append(str(repo.path / "build/stamp/stamp.c"))
    elf = repo.path / "build" / "app.elf"
    args = [compiler, *CPU, "-Os", "-Wall", "-Wextra", "-Werror", "-ffunction-sections"]
    args += ["-fdata-sections", "-nostdlib", "-Wl,--gc-sections", "-e", "entry"]
    args += ["-Ibuild/stamp", *sources, "-lgcc", "-o", str(elf)]
    linked = subprocess.run(args, cwd=repo.path, capture_output=True, text=True)
    assert linked.returncode == 0, linked.stderr
    return elf


HEADER_ONLY_APP = """\
#define STAMP_DEFINE_RECORD
#include "stamp.h"
void publish(const char *name, const char *data);
void publish(const char *name, const char *data) { (void)name; (void)data; }
void entry(void);
void entry(void) { publish("stamp", STAMP_JSON); publish("serial", STAMP_REPORT); }
"""

DEFAULT_APP = """\
#include "stamp.h"
char line[160];
void entry(void);
void entry(void) { stamp_report(line, sizeof line); }
"""


@pytest.mark.parametrize(
    ("template", "source", "suffix"),
    [
        ("header-only", HEADER_ONLY_APP, ".c"),
        ("header-only", HEADER_ONLY_APP.replace("void entry", 'extern "C" void entry'), ".cpp"),
        ("default", DEFAULT_APP, ".c"),
    ],
)
def test_record_survives_gc_sections_without_keep(
    repo: GitRepo, stamp: Stamp, template: str, source: str, suffix: str
) -> None:
    os.chdir(repo.path)
    _link(repo, source, template=template, suffix=suffix)
    code, out, err = stamp("manifest", "build/app.elf")
    assert code == 0, err
    assert "edit 1" in out


def test_a_dropped_record_is_named(repo: GitRepo, stamp: Stamp) -> None:
    os.chdir(repo.path)
    literal_only = HEADER_ONLY_APP.replace("STAMP_JSON", "STAMP_JSON_TEXT").replace(
        "STAMP_REPORT", "STAMP_REPORT_TEXT"
    )
    _link(repo, literal_only, template="header-only")
    code, _, err = stamp("manifest", "build/app.elf")
    assert code == 2
    assert "the linker dropped it" in err and "KEEP(*(.stamp))" in err
