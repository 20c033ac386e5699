"""What the linker did with the stamp record: where it put `.stamp`, or why it is missing.

Two mistakes in a linker script pass every build step and only show on the device:
`.stamp` placed first in `SECTIONS` lands at the start of flash, ahead of the vector table
(a Cortex-M core then boots from the record's bytes and locks up), or placed at a fixed
address that overlaps another section. And `-Wl,--gc-sections` drops a `.stamp` that
nothing refers to unless the script says `KEEP(*(.stamp))` (GCC's `retain` attribute
needs a toolchain built for it, which Debian's arm-none-eabi-gcc is not). The manifest
step is the last point where a person can be told, so it checks both (issue 11).
"""

from __future__ import annotations

from stamp.artifact.elf import STAMP_SECTION, ElfImage, LoadedSection

BUILD_ID_SECTION = ".note.gnu.build-id"
KEEP_LINE = ".stamp : { KEEP(*(.stamp)) } > FLASH"
WHERE_IT_GOES = (
    f"put `{KEEP_LINE}` after the output section that holds the vector table (e.g. after "
    ".text) in the linker script"
)
REPORT_CODE = b'{"edit":'
"""Bytes every stamp template's report code holds (stamp.c's put_json, STAMP_JSON)."""


def placement_problem(elf: ElfImage) -> str | None:
    """Why the linked `.stamp` section would break the firmware, or None when it is fine."""
    stamps = [s for s in elf.sections if s.name == STAMP_SECTION]
    others = [s for s in elf.sections if s.name != STAMP_SECTION]
    # The README's two linker lines (the record and the build-id note) may both be put first.
    image_parts = [s for s in others if s.name != BUILD_ID_SECTION]
    if not stamps or not others:
        return None
    for stamp in stamps:
        for other in others:
            if _overlap(stamp.lma, stamp.size, other.lma, other.size) or _overlap(
                stamp.vma, stamp.size, other.vma, other.size
            ):
                return (
                    f"its {STAMP_SECTION} section ({_span(stamp)}) overlaps {other.name} "
                    f"({_span(other)})"
                )
        first = min(image_parts, key=lambda s: s.lma, default=None)
        if first is not None and stamp.lma < first.lma:
            return (
                f"its {STAMP_SECTION} section ({stamp.lma:#x}) comes before {first.name} "
                f"({first.lma:#x}), at the start of the image, where the vector table belongs"
            )
    return None


def missing_record_reason(image: bytes) -> str:
    """Why an ELF holds no stamp record, as far as its bytes tell, and what to do."""
    keep = (
        f"add `{KEEP_LINE}` to the linker script, or call stamp_report() or stamp_json() "
        "(default template) or use STAMP_REPORT or STAMP_JSON (header-only template, with "
        "STAMP_DEFINE_RECORD defined in one source)"
    )
    if REPORT_CODE in image:
        return (
            "the linker dropped it: the firmware holds stamp's report code but no record, "
            f"which -Wl,--gc-sections removes when nothing refers to it; {keep}"
        )
    return (
        "is the generated stamp.c (or, header-only, a source defining STAMP_DEFINE_RECORD) "
        f"compiled and linked in? Or the linker dropped it (-Wl,--gc-sections): {keep}"
    )


def _overlap(start_a: int, size_a: int, start_b: int, size_b: int) -> bool:
    return start_a < start_b + size_b and start_b < start_a + size_a


def _span(section: LoadedSection) -> str:
    return f"{section.lma:#x}-{section.lma + section.size:#x}"
