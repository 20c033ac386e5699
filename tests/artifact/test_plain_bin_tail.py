"""A plain (non-Particle) firmware .bin whose last bytes happen to look like a module
suffix is not a "damaged Particle module" when it is objcopy's copy of its ELF.

Seen as a flaky failure of the example's `make` (a .data tail of zeros and a small even
number): real ELF from arm-none-eabi-gcc, .bin from arm-none-eabi-objcopy.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from tests.support import GitRepo, Stamp, require_tool
from tests.support.elf import RECORD, c_array, objcopy_bin

pytestmark = pytest.mark.toolchain

SCRIPT = """
MEMORY { FLASH (rx) : ORIGIN = 0x08000000, LENGTH = 64K }
ENTRY(entry)
SECTIONS {
  .isr_vector : { KEEP(*(.isr_vector)) } > FLASH
  .text : { *(.text*) *(.rodata*) } > FLASH
  .stamp : { KEEP(*(.stamp)) } > FLASH
  .tail : { KEEP(*(.tail)) } > FLASH
}
"""

# Ends like a suffix: a zero "reserved" u16, 32 bytes, an even "size" (882), 4 bytes.
TAIL = b"\0\0" + bytes(range(1, 33)) + (882).to_bytes(2, "little") + b"\x11\x22\x33\x44"


def test_suffix_shaped_tail_of_a_plain_bin(repo: GitRepo, stamp: Stamp, tmp_path: Path) -> None:
    gcc = require_tool("arm-none-eabi-gcc")
    source = tmp_path / "app.c"
    source.write_text(
        "void entry(void) { for (;;) {} }\n"
        '__attribute__((section(".isr_vector"), used)) void (*const v[])(void) = {entry};\n'
        + c_array("stamp_record", RECORD.pack())
        + c_array("tail", bytes(1000) + TAIL, section=".tail")
    )
    (tmp_path / "app.ld").write_text(SCRIPT)
    elf = repo.path / "build" / "app.elf"
    elf.parent.mkdir()
    args = [gcc, "-mcpu=cortex-m3", "-mthumb", "-nostdlib", "-T", str(tmp_path / "app.ld")]
    done = subprocess.run([*args, str(source), "-o", str(elf)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    binary = objcopy_bin(elf)
    assert binary.read_bytes().endswith(TAIL)
    os.chdir(repo.path)
    code, out, err = stamp("manifest", "build/app.elf", "--bin", "build/app.bin")
    assert code == 0, err
    assert "edit 112" in out
    # The .bin alone still gets the warning: nothing says it is not a cut-off module.
    code, _, err = stamp("manifest", "build/app.bin", "-o", "alone.json")
    assert code == 2 and "damaged Particle module" in err
