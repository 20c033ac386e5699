"""The stamp record: the constant struct that `stamp.c` compiles into the `.stamp` section.

This layout is the contract between the generated C (templates/*/stamp.c.j2), the
extractor (`stamp.artifact`), the simulators and the demo image builder. All fields are
little-endian (every Cortex-M and every host stamp runs on); the struct is 128 bytes with
only byte-aligned char arrays after the integers, so no compiler adds padding.

    off size field
      0    8 magic        b"STAMPREC"
      8    2 layout       RECORD_LAYOUT (1)
     10    2 size         RECORD_SIZE (128)
     12    4 edit         the editVersion
     16    1 dirty        0 clean, 1 dirty, 0xFF unknown (not a git repository)
     17    1 flags        bit 0: git SHA known
     18    2 reserved     0
     20   41 git          40 lowercase hex digits and a NUL ("unknown" when not known)
     61   67 reserved     zero: room for later fields without a layout bump
"""

from __future__ import annotations

import contextlib
import struct
from typing import NamedTuple

from stamp.errors import ArtifactError

RECORD_MAGIC = b"STAMPREC"
RECORD_LAYOUT = 1
RECORD_SIZE = 128
MAX_EDIT = 0xFFFF_FFFF
"""The highest edit the record's u32 field can hold."""
DIRTY_UNKNOWN = 0xFF
FLAG_GIT_KNOWN = 0x01
GIT_UNKNOWN = "unknown"

_HEAD = struct.Struct("<8sHHIBBH41s")


# A NamedTuple, not a dataclass: it is on `stamp header`'s no-op path (see stamp/header/run.py).
class StampRecord(NamedTuple):
    """The identity a firmware image carries about its own sources."""

    edit: int
    """The editVersion at build time."""
    git: str
    """Full 40-hex commit SHA, or "unknown" outside a git repository."""
    dirty: bool | None
    """Tracked files differed from HEAD; None when unknown."""

    def pack(self) -> bytes:
        """The 128 bytes the C template emits for this record."""
        known = self.git != GIT_UNKNOWN
        dirty = DIRTY_UNKNOWN if self.dirty is None else int(self.dirty)
        head = _HEAD.pack(
            RECORD_MAGIC,
            RECORD_LAYOUT,
            RECORD_SIZE,
            self.edit,
            dirty,
            FLAG_GIT_KNOWN if known else 0,
            0,
            self.git.encode("ascii"),
        )
        return head + bytes(RECORD_SIZE - len(head))


def unpack_record(data: bytes) -> StampRecord:
    """Decode one record from `data` (which starts with the magic); ArtifactError if invalid."""
    if len(data) < _HEAD.size:
        raise ArtifactError("stamp record is truncated")
    magic, layout, size, edit, dirty, flags, _, git_raw = _HEAD.unpack_from(data)
    if magic != RECORD_MAGIC:
        raise ArtifactError("stamp record has a bad magic number")
    if layout != RECORD_LAYOUT:
        raise ArtifactError(
            f"stamp record has layout version {layout}, this stamp reads {RECORD_LAYOUT}: "
            "upgrade stamp or re-run `stamp header` and rebuild"
        )
    if size != RECORD_SIZE or len(data) < size:
        raise ArtifactError(f"stamp record has size {size}, expected {RECORD_SIZE}")
    git = git_raw.split(b"\0", 1)[0].decode("ascii", errors="replace")
    if flags & FLAG_GIT_KNOWN:
        if len(git) != 40 or any(c not in "0123456789abcdef" for c in git):
            raise ArtifactError("stamp record holds a malformed git SHA")
    else:
        git = GIT_UNKNOWN
    if dirty not in (0, 1, DIRTY_UNKNOWN):
        raise ArtifactError("stamp record holds a malformed dirty flag")
    return StampRecord(edit=edit, git=git, dirty=None if dirty == DIRTY_UNKNOWN else bool(dirty))


def find_records(data: bytes) -> list[tuple[int, StampRecord]]:
    """Every valid record in a raw image (a .bin has no sections), with its offset."""
    found: list[tuple[int, StampRecord]] = []
    start = data.find(RECORD_MAGIC)
    while start != -1:
        with contextlib.suppress(ArtifactError):
            found.append((start, unpack_record(data[start : start + RECORD_SIZE])))
        start = data.find(RECORD_MAGIC, start + 1)
    return found


def report_object(record: StampRecord, build_id: str | None = None) -> dict[str, object]:
    """The JSON object a device running this record reports (SPEC section 6): the one
    builder, formatted the way stamp.c's stamp_json() does (`dirty` omitted when unknown)."""
    obj: dict[str, object] = {"edit": record.edit, "git": record.git}
    if record.dirty is not None:
        obj["dirty"] = record.dirty
    if build_id is not None:
        obj["build_id"] = build_id
    return obj


def report_json(record: StampRecord, build_id: str | None = None) -> str:
    """`report_object` as the compact JSON text a device prints or publishes."""
    import json

    return json.dumps(report_object(record, build_id), separators=(",", ":"))
