"""Real firmware ELFs for the artifact tests: tiny C programs built by arm-none-eabi-gcc.

Each linker layout exercises one thing objcopy -O binary does: `.data` stored in flash
but run from RAM (LMA != VMA), gaps between sections, sections whose header order is not
their address order, `.stamp` merged into `.text`, the toolchain's default script, and a
Particle-style module with a prefix at offset 0 and the SHA/CRC placeholders at the end.
"""

from __future__ import annotations

import hashlib
import subprocess
from pathlib import Path

from stamp.record import StampRecord
from tests.support import require_tool

CFLAGS = ("-mcpu=cortex-m3", "-mthumb", "-nostdlib", "-Os", "-Wl,--build-id")

GIT_A = "1a2b3c4d5e6f7a8b9c0d1e2f3a4b5c6d7e8f9a0b"
GIT_B = "0123456789abcdef0123456789abcdef01234567"
RECORD = StampRecord(edit=112, git=GIT_A, dirty=False)

_PROGRAM = """
#include <stdint.h>
const char greeting[] = "hello from stamp";
int counter = 0x12345678;
int scratch[4];
extern const unsigned char stamp_record[];
void Reset_Handler(void)
{
    scratch[0] = counter + greeting[0] + stamp_record[8];
    for (;;) {}
}
__attribute__((section(".isr_vector"), used))
void (* const vectors[])(void) = {(void (*)(void))0x20001000, Reset_Handler};
"""

_MEMORY = """
MEMORY {
  FLASH (rx) : ORIGIN = 0x08000000, LENGTH = 256K
  RAM (rwx)  : ORIGIN = 0x20000000, LENGTH = 64K
}
ENTRY(Reset_Handler)
"""

LAYOUTS: dict[str, str] = {
    # The usual Cortex-M script: .data runs from RAM, is stored in flash after .text.
    "flash_ram": _MEMORY
    + """
SECTIONS {
  .isr_vector : { KEEP(*(.isr_vector)) } > FLASH
  .note.gnu.build-id : { PROVIDE(__stamp_build_id = .); KEEP(*(.note.gnu.build-id)) } > FLASH
  .text : { *(.text*) *(.rodata*) } > FLASH
  .stamp : { KEEP(*(.stamp)) } > FLASH
  .data : { *(.data*) } > RAM AT> FLASH
  .bss (NOLOAD) : { *(.bss*) *(COMMON) } > RAM
}
""",
    # Gaps: .stamp at a fixed address well after .text, .rodata on a 1 KiB boundary.
    "gaps": _MEMORY
    + """
SECTIONS {
  .isr_vector : { KEEP(*(.isr_vector)) } > FLASH
  .text : { *(.text*) } > FLASH
  .rodata : ALIGN(0x400) { *(.rodata*) } > FLASH
  .stamp 0x08001000 : { KEEP(*(.stamp)) } > FLASH
  .note.gnu.build-id : { KEEP(*(.note.gnu.build-id)) } > FLASH
  .data : ALIGN(0x100) { *(.data*) } > RAM AT> FLASH
  .bss (NOLOAD) : { *(.bss*) *(COMMON) } > RAM
}
""",
    # LMA == VMA for .data, in a RAM region right after flash: zeros fill the gap.
    "lma_is_vma": """
MEMORY {
  FLASH (rx) : ORIGIN = 0x00000000, LENGTH = 16K
  RAM (rwx)  : ORIGIN = 0x00004000, LENGTH = 16K
}
ENTRY(Reset_Handler)
SECTIONS {
  .isr_vector : { KEEP(*(.isr_vector)) } > FLASH
  .text : { *(.text*) *(.rodata*) } > FLASH
  .stamp : { KEEP(*(.stamp)) } > FLASH
  .note.gnu.build-id : { KEEP(*(.note.gnu.build-id)) } > FLASH
  .data : { *(.data*) } > RAM
  .bss : { *(.bss*) *(COMMON) } > RAM
}
""",
    # Section-header order differs from address order.
    "out_of_order": _MEMORY
    + """
SECTIONS {
  .stamp 0x08000800 : { KEEP(*(.stamp)) } > FLASH
  .isr_vector 0x08000000 : { KEEP(*(.isr_vector)) } > FLASH
  .text 0x08000100 : { *(.text*) *(.rodata*) } > FLASH
  .note.gnu.build-id 0x08000a00 : { KEEP(*(.note.gnu.build-id)) } > FLASH
  .data : { *(.data*) } > RAM AT> FLASH
  .bss (NOLOAD) : { *(.bss*) *(COMMON) } > RAM
}
""",
    # A NOLOAD reservation between two loaded sections: zeros in the .bin.
    "noload_between": _MEMORY
    + """
SECTIONS {
  .isr_vector : { KEEP(*(.isr_vector)) } > FLASH
  .text : { *(.text*) *(.rodata*) } > FLASH
  .reserved (NOLOAD) : { . += 0x40; } > FLASH
  .stamp : { KEEP(*(.stamp)) } > FLASH
  .note.gnu.build-id : { KEEP(*(.note.gnu.build-id)) } > FLASH
  .data : { *(.data*) } > RAM AT> FLASH
  .bss (NOLOAD) : { *(.bss*) *(COMMON) } > RAM
}
""",
    # The record merged into .text: no .stamp output section at all.
    "merged": _MEMORY
    + """
SECTIONS {
  .isr_vector : { KEEP(*(.isr_vector)) } > FLASH
  .text : { *(.text*) *(.rodata*) . = ALIGN(4); KEEP(*(.stamp)) } > FLASH
  .note.gnu.build-id : { KEEP(*(.note.gnu.build-id)) } > FLASH
  .data : { *(.data*) } > RAM AT> FLASH
  .bss (NOLOAD) : { *(.bss*) *(COMMON) } > RAM
}
""",
    # The record's section not kept by the script and garbage-collected (--gc-sections).
    "dropped": _MEMORY
    + """
SECTIONS {
  .isr_vector : { KEEP(*(.isr_vector)) } > FLASH
  .text : { *(.text*) *(.rodata*) } > FLASH
  /DISCARD/ : { *(.stamp) }
  .data : { *(.data*) } > RAM AT> FLASH
  .bss (NOLOAD) : { *(.bss*) *(COMMON) } > RAM
}
""",
    # No -T: the toolchain's built-in script (text at 0x8000, .stamp an orphan section).
    "default": "",
}

# Linker scripts that `stamp manifest` refuses (tests/artifact/test_linking.py).
MISPLACED: dict[str, str] = {
    # The linker lines put first in SECTIONS (issue 11): the record ahead of the vectors.
    "stamp_first": _MEMORY
    + """
SECTIONS {
  .stamp : { KEEP(*(.stamp)) } > FLASH
  .isr_vector : { KEEP(*(.isr_vector)) } > FLASH
  .text : { *(.text*) *(.rodata*) } > FLASH
  .data : { *(.data*) } > RAM AT> FLASH
  .bss (NOLOAD) : { *(.bss*) *(COMMON) } > RAM
}
""",
    # .stamp at a fixed address inside .text (links only with -Wl,--no-check-sections).
    "stamp_overlaps": _MEMORY
    + """
SECTIONS {
  .isr_vector : { KEEP(*(.isr_vector)) } > FLASH
  .text : { *(.text*) *(.rodata*) } > FLASH
  .note.gnu.build-id : { KEEP(*(.note.gnu.build-id)) } > FLASH
  .stamp 0x08000010 : { KEEP(*(.stamp)) }
  .data : { *(.data*) } > RAM AT> FLASH
  .bss (NOLOAD) : { *(.bss*) *(COMMON) } > RAM
}
""",
}

_PARTICLE_PROGRAM = """
#include <stdint.h>
struct __attribute__((packed)) module_info {
    uint32_t start, end;
    uint8_t reserved, flags;
    uint16_t version, platform;
    uint8_t function, index;
    uint8_t d1_function, d1_index;
    uint16_t d1_version;
    uint8_t d2_function, d2_index;
    uint16_t d2_version;
};
struct __attribute__((packed)) module_suffix {
    uint16_t reserved;
    uint8_t sha[32];
    uint16_t size;
};
extern const char link_module_start[], link_module_end[];
__attribute__((section(".module_info"), used))
const struct module_info module_info = {
    (uint32_t)link_module_start, (uint32_t)link_module_end, 0, 0, 6, 6, 5, 1, 4, 2, 1, 0, 0, 0,
};
__attribute__((section(".module_suffix"), used, aligned(4)))
const struct module_suffix module_suffix = {
    0,
    {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16,
     17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31, 32},
    36,
};
__attribute__((section(".module_crc"), used))
const uint8_t module_crc[4] = {0x78, 0x56, 0x34, 0x12};
const char greeting[] = "hello from a Photon";
int counter = 7;
extern const unsigned char stamp_record[];
int setup(void) { return counter + greeting[0] + stamp_record[8]; }
"""

PARTICLE_LAYOUT = """
MEMORY {
  APP_FLASH (rx) : ORIGIN = 0x080A0000, LENGTH = 128K
  SRAM (rwx)     : ORIGIN = 0x20000300, LENGTH = 16K
}
ENTRY(setup)
SECTIONS {
  .module_info : { link_module_start = .; KEEP(*(.module_info)) } > APP_FLASH
  .text : { *(.text*) *(.rodata*) } > APP_FLASH
  .stamp : { KEEP(*(.stamp)) } > APP_FLASH
  .note.gnu.build-id : { KEEP(*(.note.gnu.build-id)) } > APP_FLASH
  .data : ALIGN(4) { *(.data*) . = ALIGN(4); } > SRAM AT> APP_FLASH
  .module_suffix : ALIGN(4) { KEEP(*(.module_suffix)) } > APP_FLASH
  .module_crc : { link_module_end = .; KEEP(*(.module_crc)) } > APP_FLASH
  .bss (NOLOAD) : { *(.bss*) *(COMMON) } > SRAM
}
"""


def c_array(name: str, data: bytes, *, section: str | None = ".stamp") -> str:
    """A C definition of `data` as a const byte array, optionally in its own section."""
    attrs = f'__attribute__((section("{section}"), used, aligned(4))) ' if section else ""
    body = ", ".join(f"0x{b:02x}" for b in data)
    return f"{attrs}const unsigned char {name}[{len(data)}] = {{{body}}};\n"


def record_source(*records: StampRecord | bytes) -> str:
    """C for one or more stamp records in `.stamp` (`stamp_record` is the first)."""
    if not records:
        return "const unsigned char stamp_record[16];\n"
    raw = [r if isinstance(r, bytes) else r.pack() for r in records]
    parts = [c_array("stamp_record", raw[0])]
    parts += [c_array(f"stamp_record_{i}", data) for i, data in enumerate(raw[1:], 1)]
    return "".join(parts)


def build_elf(
    directory: Path,
    *records: StampRecord | bytes,
    layout: str = "flash_ram",
    name: str = "app",
    extra_flags: tuple[str, ...] = (),
) -> Path:
    """Compile and link a tiny Cortex-M3 program holding `records`; the ELF's path."""
    gcc = require_tool("arm-none-eabi-gcc")
    directory.mkdir(parents=True, exist_ok=True)
    particle = layout == "particle"
    source = directory / f"{name}.c"
    source.write_text(
        (_PARTICLE_PROGRAM if particle else _PROGRAM) + record_source(*records), encoding="ascii"
    )
    args = [gcc, *CFLAGS, *extra_flags, "-o", str(directory / f"{name}.elf"), str(source)]
    script_text = PARTICLE_LAYOUT if particle else {**LAYOUTS, **MISPLACED}[layout]
    if script_text:
        script = directory / f"{name}.ld"
        script.write_text(script_text, encoding="ascii")
        args += ["-T", str(script)]
    else:
        args += ["-e", "Reset_Handler"]
    if layout == "dropped":
        args += ["-Wl,--gc-sections"]
    done = subprocess.run(args, capture_output=True, text=True, check=False, timeout=120)
    assert done.returncode == 0, done.stderr
    return directory / f"{name}.elf"


def objcopy_bin(elf: Path, out: Path | None = None) -> Path:
    """`arm-none-eabi-objcopy -O binary ELF BIN`: the reference loadable image."""
    objcopy = require_tool("arm-none-eabi-objcopy")
    out = out or elf.with_suffix(".bin")
    done = subprocess.run(
        [objcopy, "-O", "binary", str(elf), str(out)],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    return out


def sha256sum(path: Path) -> str:
    """The digest `sha256sum` prints for `path` (the real tool, not hashlib)."""
    tool = require_tool("sha256sum")
    done = subprocess.run([tool, str(path)], capture_output=True, text=True, check=True)
    return done.stdout.split()[0]


def readelf_build_id(elf: Path) -> str:
    """The build-id `arm-none-eabi-readelf -n` reports."""
    readelf = require_tool("arm-none-eabi-readelf")
    done = subprocess.run([readelf, "-n", str(elf)], capture_output=True, text=True, check=True)
    for line in done.stdout.splitlines():
        if "Build ID:" in line:
            return line.split("Build ID:")[1].strip()
    raise AssertionError(f"readelf -n shows no build-id:\n{done.stdout}")


def file_sha256(path: Path) -> str:
    """hashlib's SHA-256 of a file (where the real tool is not the point)."""
    return hashlib.sha256(path.read_bytes()).hexdigest()
