"""The GNU build-id note: read from note sections and segments, or found in a raw image.

`build_id_from_notes` is stamp's one note walk, for an ELF's note sections and PT_NOTE
segments (stamp.artifact.elf) and for note bytes a GDB server reads from a target's
memory (stamp.device.transport.gdb). pyelftools' `iter_notes` serves none of them: it pads
notes to 4 bytes (an 8-aligned note section is misread), needs an `ELFFile` (target
memory is not one) and reads a note's size unchecked against its section.

A raw image (a .bin) has no sections to find the note by: `scan_build_id` looks for the
note's header bytes instead.
"""

from __future__ import annotations

import re
import struct

NT_GNU_BUILD_ID = 3
GNU_NOTE_NAME = b"GNU\0"

# A GNU build-id note as the linker lays it out in a little-endian image: namesz 4, descsz
# (1..64), type 3 (NT_GNU_BUILD_ID), "GNU\0", then the id. When the linker script keeps
# the note in flash (as the example's does) it is in the .bin too.
_BUILD_ID_NOTE = re.compile(rb"\x04\x00\x00\x00([\x01-\x40])\x00\x00\x00\x03\x00\x00\x00GNU\x00")


def build_id_from_notes(notes: bytes, *, little: bool = True, align: int = 4) -> str | None:
    """The NT_GNU_BUILD_ID descriptor in the bytes of a note section, as lowercase hex;
    ValueError when they are not well-formed notes.

    Notes are 4-byte aligned, or 8 in sections aligned to 8 (.note.gnu.property on
    64-bit hosts); the padding is relative to the section start, as in the gABI.
    """
    step = 8 if align == 8 else 4
    head = struct.Struct("<III" if little else ">III")
    pos = 0
    while pos + head.size <= len(notes):
        namesz, descsz, note_type = head.unpack_from(notes, pos)
        name_at = pos + head.size
        desc_at = _round_up(name_at + namesz, step)
        if desc_at + descsz > len(notes):
            raise ValueError(f"the note at offset {pos:#x} runs past the end of its section")
        if note_type == NT_GNU_BUILD_ID and notes[name_at : name_at + namesz] == GNU_NOTE_NAME:
            return notes[desc_at : desc_at + descsz].hex() or None
        pos = _round_up(desc_at + descsz, step)
    return None


def _round_up(value: int, step: int) -> int:
    return (value + step - 1) // step * step


def scan_build_id(data: bytes) -> str | None:
    """The GNU build-id in a raw image (a .bin has no sections): the descriptor of the
    `GNU` build-id note found in it, when exactly one distinct id is found."""
    ids = set()
    for match in _BUILD_ID_NOTE.finditer(data):
        desc = data[match.end() : match.end() + match.group(1)[0]]
        if len(desc) == match.group(1)[0]:
            ids.add(desc.hex())
    return ids.pop() if len(ids) == 1 else None
