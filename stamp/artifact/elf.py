"""What an ELF file says about the build: its stamp record, GNU build-id and loadable image.

Only the ELF header, the section and program header tables, `.shstrtab`, the notes and
the allocated sections are read; symbols and DWARF are never walked, so a 50 MB ELF full
of debug information costs what its loadable bytes cost (bench/bench_manifest.py).

The loadable image is exactly what `arm-none-eabi-objcopy -O binary` writes: every
allocated section that has contents, placed at its load address (LMA) relative to the
lowest one, gaps filled with zeros, in section-header order. The LMA is derived from the
program headers the way BFD does it (binutils bfd/elf.c, `_bfd_elf_make_section_from_shdr`),
so `.data` stored in flash (`AT> FLASH`) lands where objcopy puts it.

pyelftools (imported inside `read_elf`, so only a command that reads an ELF pays for it)
reads the headers; any error it or `struct` raises on a corrupt file is an ArtifactError.
The build-id note is found by stamp's one note walk (stamp.artifact.build_id).
"""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, BinaryIO

from stamp.artifact.build_id import build_id_from_notes
from stamp.errors import ArtifactError
from stamp.record import RECORD_MAGIC, RECORD_SIZE, StampRecord, find_records, unpack_record

ELF_MAGIC = b"\x7fELF"
STAMP_SECTION = ".stamp"
# Microcontroller flash is at most tens of MiB (Particle modules: MAX_MODULE_FILE, 64 MiB);
# an image spanning more means the linker script put a loaded section at a wild address
# (e.g. `.data` without `AT> FLASH`), and objcopy would write hundreds of MiB of zeros.
# Refuse instead of allocating it.
MAX_IMAGE_SIZE = 64 * 1024 * 1024

_SHF_ALLOC = 0x2
_SHF_TLS = 0x400


@dataclass(frozen=True)
class LoadedSection:
    """One section that objcopy -O binary writes into the image."""

    name: str
    """Its name, e.g. ".text"."""
    lma: int
    """Load address: where its bytes sit in flash (and in the .bin)."""
    vma: int
    """Run address (differs from lma for `.data` copied to RAM at startup)."""
    size: int
    """Its size in bytes."""


@dataclass(frozen=True)
class FoundRecord:
    """A stamp record and where it was found."""

    record: StampRecord
    """The decoded record."""
    where: str
    """Human description of its location, e.g. "section .stamp + 0x0"."""


@dataclass(frozen=True)
class ElfImage:
    """The identity-relevant contents of one ELF file."""

    elf_class: int
    """32 or 64."""
    machine: str
    """e_machine as pyelftools names it, e.g. "EM_ARM"."""
    entry: int
    """The entry point address."""
    sections: tuple[LoadedSection, ...]
    """The sections that make up the loadable image, in section-header order."""
    base: int
    """Load address of the image's first byte (0 when the image is empty)."""
    image: bytes
    """The loadable image, byte for byte what objcopy -O binary produces."""
    build_id: str | None
    """The GNU build-id (lowercase hex), None without `-Wl,--build-id`."""
    records: tuple[FoundRecord, ...]
    """Every stamp record found: in `.stamp`, or else anywhere in the loadable image."""
    record_problem: str | None = None
    """Why the stamp record is unusable (bad magic, newer layout…); None if fine or absent."""

    @property
    def image_sha256(self) -> str:
        """SHA-256 of the loadable image, lowercase hex (= sha256sum of the objcopy .bin)."""
        return hashlib.sha256(self.image).hexdigest()


def is_elf(head: bytes) -> bool:
    """True when `head` (at least the first 4 bytes of a file) starts like an ELF file."""
    return head[:4] == ELF_MAGIC


def single_record(records: Iterable[FoundRecord], name: str) -> StampRecord | None:
    """The one record `records` agree on, None when empty; ArtifactError when they differ."""
    distinct: dict[StampRecord, str] = {}
    for found in records:
        distinct.setdefault(found.record, found.where)
    if len(distinct) > 1:
        described = "; ".join(
            f"edit {r.edit}, git {r.git[:12]} at {where}" for r, where in distinct.items()
        )
        raise ArtifactError(
            f"{name} holds {len(distinct)} different stamp records ({described}): "
            "link exactly one generated stamp.c"
        )
    return next(iter(distinct), None)


def read_elf(fp: BinaryIO, name: str) -> ElfImage:
    """Parse the ELF file open in `fp` (seekable; bytes via io.BytesIO); `name` is for messages.

    Raises ArtifactError for anything that is not a well-formed ELF, never a library error.
    Contents are read only after their offset and size are checked against the file's
    size, so an absurd section header costs nothing.
    """
    from elftools.common.exceptions import ELFError
    from elftools.construct.core import ConstructError

    fp.seek(0)
    head = fp.read(4)
    if not head:
        raise ArtifactError(f"{name} is empty")
    if not is_elf(head):
        raise ArtifactError(f"{name} is not an ELF file (no \\x7fELF magic)")
    try:
        return _read(fp, name)
    except ArtifactError:
        raise
    except (
        ELFError,
        ConstructError,
        struct.error,
        ValueError,
        IndexError,
        KeyError,
        TypeError,
        OverflowError,
        UnicodeDecodeError,
    ) as exc:
        # pyelftools raises all of these on corrupt headers (not only ELFError).
        raise ArtifactError(
            f"{name} is a corrupt ELF file ({_describe(exc)})", detail=repr(exc)
        ) from None


def _describe(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:120] if text else type(exc).__name__


def _read(fp: BinaryIO, name: str) -> ElfImage:
    """What stamp needs of an ELF file (`read_elf` translates the errors).

    Long because it is one pass over the headers in file order (ELF header, sections,
    segments, notes, the loaded sections); split, each part would need the others' state.
    """
    from elftools.elf.elffile import ELFFile

    elf = ELFFile(fp)
    size = int(elf.stream_len)
    little = bool(elf.little_endian)

    segments = [seg.header for seg in elf.iter_segments()]
    headers: list[tuple[str, Any]] = []
    for index in range(elf.num_sections()):
        section = elf.get_section(index)
        headers.append((section.name, section.header))
    if not headers and any(seg["p_type"] == "PT_LOAD" and seg["p_filesz"] for seg in segments):
        # objcopy -O binary refuses such a file ("has no sections"), and so does stamp,
        # rather than report an empty image and no build-id (issue 10).
        raise ArtifactError(
            f"{name} has no section headers, though its program headers load bytes: "
            "the file is corrupt (objcopy refuses it too)"
        )

    def contents(section_name: str, header: Any) -> bytes:
        what = f"section {section_name or '(unnamed)'}"
        return _read_at(fp, name, size, what, header["sh_offset"], header["sh_size"])

    loaded: list[tuple[LoadedSection, bytes]] = []
    build_id: str | None = None
    stamp_sections: list[tuple[str, bytes]] = []
    for section_name, header in headers:
        sh_type = header["sh_type"]
        if sh_type == "SHT_NOTE" and build_id is None:
            try:
                build_id = build_id_from_notes(
                    contents(section_name, header), little=little, align=header["sh_addralign"]
                )
            except ValueError as exc:
                raise ArtifactError(f"{name} is corrupt: in {section_name}, {exc}") from None
        if section_name == STAMP_SECTION:
            bits = b"" if sh_type == "SHT_NOBITS" else contents(section_name, header)
            stamp_sections.append((section_name, bits))
        if (
            header["sh_flags"] & _SHF_ALLOC
            and sh_type not in ("SHT_NOBITS", "SHT_NULL")
            and header["sh_size"] > 0
        ):
            lma = _load_address(header, segments)
            loaded.append(
                (
                    LoadedSection(section_name, lma, header["sh_addr"], header["sh_size"]),
                    contents(section_name, header),
                )
            )

    if build_id is None:  # sections unusable for notes: read them as readelf -n does
        build_id = _segment_build_id(fp, name, size, segments, little)
    base, image = _layout(loaded, name)
    records, problem = _records(stamp_sections, image, base)
    return ElfImage(
        elf_class=elf.elfclass,
        machine=str(elf["e_machine"]),
        entry=int(elf["e_entry"]),
        sections=tuple(section for section, _ in loaded),
        base=base,
        image=image,
        build_id=build_id,
        records=records,
        record_problem=problem,
    )


def _read_at(fp: BinaryIO, name: str, size: int, what: str, offset: int, length: int) -> bytes:
    """`length` bytes at `offset`, checked against the file's size first."""
    if offset > size or length > size - offset:
        raise ArtifactError(
            f"{name} is truncated or corrupt: {what} claims "
            f"{length} bytes at offset {offset}, past the end of the {size}-byte file"
        )
    fp.seek(offset)
    bits = fp.read(length)
    if len(bits) != length:
        raise ArtifactError(f"{name} changed while it was being read: run stamp again")
    return bits


def _segment_build_id(
    fp: BinaryIO, name: str, size: int, segments: list[Any], little: bool
) -> str | None:
    """The build-id in the PT_NOTE segments (binutils readelf's fallback, process_notes)."""
    for index, seg in enumerate(segments):
        if seg["p_type"] != "PT_NOTE" or not seg["p_filesz"]:
            continue
        what = f"segment {index} (PT_NOTE)"
        bits = _read_at(fp, name, size, what, seg["p_offset"], seg["p_filesz"])
        try:
            found = build_id_from_notes(bits, little=little, align=seg["p_align"])
        except ValueError as exc:
            raise ArtifactError(f"{name} is corrupt: in {what}, {exc}") from None
        if found is not None:
            return found
    return None


def _in_segment(header: Any, phdr: Any) -> bool:
    """BFD's ELF_SECTION_IN_SEGMENT (include/elf/internal.h) for an allocated section."""
    tls = bool(header["sh_flags"] & _SHF_TLS)
    p_type = phdr["p_type"]
    if tls and p_type not in ("PT_TLS", "PT_GNU_RELRO", "PT_LOAD"):
        return False
    if not tls and p_type in ("PT_TLS", "PT_PHDR"):
        return False
    nobits = header["sh_type"] == "SHT_NOBITS"
    # A TLS .tbss occupies no space in anything but the PT_TLS segment.
    sec_size = 0 if (tls and nobits and p_type != "PT_TLS") else header["sh_size"]
    if not nobits and not (
        header["sh_offset"] >= phdr["p_offset"]
        and header["sh_offset"] - phdr["p_offset"] + sec_size <= phdr["p_filesz"]
    ):
        return False
    return bool(
        header["sh_addr"] >= phdr["p_vaddr"]
        and header["sh_addr"] - phdr["p_vaddr"] + sec_size <= phdr["p_memsz"]
    )


def _load_address(header: Any, segments: list[Any]) -> int:
    """The section's LMA as BFD computes it for a section that has contents."""
    # Some linkers leave every p_paddr zero; with several PT_LOADs BFD then keeps LMA = VMA.
    if all(p["p_paddr"] == 0 for p in segments):
        loads = sum(1 for p in segments if p["p_type"] == "PT_LOAD" and p["p_memsz"] != 0)
        if loads > 1:
            return int(header["sh_addr"])
    tls = bool(header["sh_flags"] & _SHF_TLS)
    lma = int(header["sh_addr"])
    for phdr in segments:
        p_type = phdr["p_type"]
        usable = (p_type == "PT_LOAD" and not tls) or p_type == "PT_TLS"
        if usable and _in_segment(header, phdr):
            lma = phdr["p_paddr"] + header["sh_offset"] - phdr["p_offset"]
            end = header["sh_addr"] + header["sh_size"]
            if header["sh_addr"] >= phdr["p_vaddr"] and end <= phdr["p_vaddr"] + phdr["p_memsz"]:
                break
    return int(lma)


def _layout(loaded: list[tuple[LoadedSection, bytes]], name: str) -> tuple[int, bytes]:
    """objcopy -O binary: sections at lma - lowest lma, zero gaps, later sections win."""
    if not loaded:
        return 0, b""
    base = min(section.lma for section, _ in loaded)
    end = max(section.lma + section.size for section, _ in loaded)
    if end - base > MAX_IMAGE_SIZE:
        low = min(loaded, key=lambda item: item[0].lma)[0]
        high = max(loaded, key=lambda item: item[0].lma + item[0].size)[0]
        raise ArtifactError(
            f"{name}'s loadable sections span {end - base} bytes ({low.name} at "
            f"{low.lma:#x} to {high.name} ending at {end:#x}): check the linker script's "
            "load addresses (`AT> FLASH` for .data)"
        )
    ordered = sorted(loaded, key=lambda item: item[0].lma)  # stable: header order on ties
    pieces: list[bytes] = []
    at = base
    for section, bits in ordered:
        if section.lma < at:  # overlapping sections: later headers overwrite earlier ones
            return base, _overlay(loaded, base, end)
        pieces += [bytes(section.lma - at), bits]
        at = section.lma + section.size
    return base, b"".join(pieces)


def _overlay(loaded: list[tuple[LoadedSection, bytes]], base: int, end: int) -> bytes:
    image = bytearray(end - base)
    for section, bits in loaded:
        start = section.lma - base
        image[start : start + section.size] = bits
    return bytes(image)


def _records(
    stamp_sections: list[tuple[str, bytes]], image: bytes, base: int
) -> tuple[tuple[FoundRecord, ...], str | None]:
    """Records from `.stamp` (all must be valid), else from anywhere in the image."""
    found: list[FoundRecord] = []
    for section_name, bits in stamp_sections:
        raw = bits
        start = raw.find(RECORD_MAGIC)
        if start == -1:
            return (), f"its {section_name} section holds no stamp record (no magic number)"
        while start != -1:
            try:
                record = unpack_record(raw[start : start + RECORD_SIZE])
            except ArtifactError as exc:
                return (), f"{exc} (section {section_name} + {start:#x})"
            found.append(FoundRecord(record, f"section {section_name} + {start:#x}"))
            start = raw.find(RECORD_MAGIC, start + 1)
    if found:
        return tuple(found), None
    # The linker script may have merged .stamp into another output section (.text, .rodata).
    return scan_image(image, base)


def scan_image(image: bytes, base: int) -> tuple[tuple[FoundRecord, ...], str | None]:
    """Records anywhere in a raw image; else why a record-like block there was rejected."""
    found = tuple(
        FoundRecord(record, f"address {base + offset:#x}") for offset, record in find_records(image)
    )
    if found:
        return found, None
    start = image.find(RECORD_MAGIC)
    if start == -1:
        return (), None
    try:
        unpack_record(image[start : start + RECORD_SIZE])
    except ArtifactError as exc:
        return (), f"{exc} (at address {base + start:#x})"
    return (), None  # unreachable: find_records would have returned it
