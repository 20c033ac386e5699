"""Where a build's identity sits in the target's memory: the manifest's `memory` object.

`stamp verify --device gdb:HOST:PORT` reads the target through a debug probe, so it needs
the addresses a build put things at, recorded at build time from the ELF (a manifest may
outlive its ELF, and a CI-built manifest may be all a bench has):

    "memory": {
      "record": {"address": 1328, "size": 128},          # the stamp record (load address)
      "build_id_note": {"address": 1456, "size": 36},    # .note.gnu.build-id, or null
      "regions": [{"address": 0, "size": 1328}, ...]     # every loadable section (LMA)
    }

Addresses are load addresses (where the bytes sit in flash), which is also what
`objcopy -O binary` lays out: the regions read back, with zero gaps between them, hash
to the manifest's `image_sha256`. A manifest written by an older stamp has no `memory`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from stamp.artifact.elf import ElfImage
from stamp.record import RECORD_SIZE, StampRecord, find_records

BUILD_ID_SECTION = ".note.gnu.build-id"


@dataclass(frozen=True)
class Region:
    """A range of target addresses."""

    address: int
    """The first byte's address."""
    size: int
    """Its length in bytes."""

    @property
    def end(self) -> int:
        return self.address + self.size

    def to_json(self) -> dict[str, int]:
        return {"address": self.address, "size": self.size}

    @classmethod
    def from_json(cls, value: Any) -> Region:
        """TypeError/ValueError when `value` is not {"address": N, "size": N} (N >= 0)."""
        if not isinstance(value, dict):
            raise TypeError("a memory region is not a JSON object")
        address, size = value.get("address"), value.get("size")
        for field, number in (("address", address), ("size", size)):
            if type(number) is not int or number < 0:
                raise ValueError(f"a memory region's {field} {number!r} is not a natural number")
        assert isinstance(address, int) and isinstance(size, int)
        return cls(address, size)


@dataclass(frozen=True)
class MemoryLayout:
    """Where one build keeps its identity and its image in the target's memory."""

    record: Region
    """The stamp record."""
    build_id_note: Region | None
    """The GNU build-id note, when the linker script keeps it in loadable memory."""
    regions: tuple[Region, ...]
    """The loadable sections, in load-address order."""

    @property
    def base(self) -> int:
        """The image's first byte's address (the .bin's offset 0)."""
        return min((r.address for r in self.regions), default=self.record.address)

    @property
    def end(self) -> int:
        """One past the image's last byte."""
        return max((r.end for r in self.regions), default=self.record.end)

    def to_json(self) -> dict[str, Any]:
        return {
            "record": self.record.to_json(),
            "build_id_note": self.build_id_note.to_json() if self.build_id_note else None,
            "regions": [r.to_json() for r in self.regions],
        }

    @classmethod
    def from_json(cls, value: Any) -> MemoryLayout:
        """TypeError/ValueError when `value` is not a `memory` object."""
        if not isinstance(value, dict):
            raise TypeError("`memory` is not a JSON object")
        note = value.get("build_id_note")
        regions = value.get("regions") or []
        if not isinstance(regions, list):
            raise TypeError("`memory.regions` is not a list")
        return cls(
            record=Region.from_json(value.get("record")),
            build_id_note=Region.from_json(note) if note is not None else None,
            regions=tuple(Region.from_json(r) for r in regions),
        )


def memory_layout(elf: ElfImage, record: StampRecord | None) -> MemoryLayout | None:
    """The layout of `elf`, None when its record is not exactly once in the loadable image."""
    if record is None:
        return None
    at = [offset for offset, found in find_records(elf.image) if found == record]
    if len(at) != 1:
        return None
    note = next((s for s in elf.sections if s.name == BUILD_ID_SECTION), None)
    return MemoryLayout(
        record=Region(elf.base + at[0], RECORD_SIZE),
        build_id_note=Region(note.lma, note.size) if note is not None else None,
        regions=tuple(Region(s.lma, s.size) for s in sorted(elf.sections, key=lambda s: s.lma)),
    )
