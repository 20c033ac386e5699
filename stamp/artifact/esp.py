"""ESP-IDF application images and ELFs: the app description, the checksums, the chip.

An ESP-IDF app `.bin` (what `esptool elf2image` writes) is an esptool firmware image: a
header (magic 0xE9), an extended header naming the chip, segments, a one-byte checksum
and, when the extended header says so, a SHA-256 "validation hash" of everything before
it. Its first flash-mapped (DROM) segment starts with the `esp_app_desc_t` (magic
0xABCD5432): version, project name, compile time and date, IDF version, and the SHA-256
of the ELF the image was made from, patched in by `elf2image --elf-sha256-offset 0xb0`
(ESP-IDF's build passes it). That hash is `sha256sum` of the ELF file, so an ELF and a
`.bin` belong together exactly when the `.bin` stores the ELF's hash.

Libraries: the image layout, segments, checksum and validation hash are read by esptool's
own image classes (`esptool.bin_image.LoadFirmwareImage`), the code `esptool image-info`
uses. esptool parses `esp_app_desc_t` only in a private helper of its CLI
(`cmds._parse_app_info`), so the 256-byte struct, documented in ESP-IDF's "App Image
Format", is unpacked here. esptool is optional (the `esp` extra) and imported only when an
ESP image is read; without it that read is one clear ArtifactError.
"""

from __future__ import annotations

import struct
from dataclasses import asdict, dataclass
from typing import Any

from stamp.artifact.elf import ElfImage
from stamp.errors import ArtifactError

ESP_IMAGE_MAGIC = 0xE9
APP_DESC_MAGIC = 0xABCD5432
APP_DESC_SIZE = 256
DIGEST_SIZE = 32
"""The appended validation hash: a SHA-256."""
MAX_SEGMENTS = 16
"""The ROM bootloader loads at most 16 segments (esptool refuses more)."""
HEADER_SIZE = 24
"""The 8-byte image header and the 16-byte extended header of ESP32-family images."""
_APPEND_DIGEST_AT = 23
_CHIP_ID_AT = 12
APPDESC_SECTIONS = (".flash.appdesc", ".flash.rodata")
"""Where the app description sits in an ESP-IDF ELF: its own section since ESP-IDF 5,
the start of `.flash.rodata` before."""


class EsptoolMissing(ArtifactError):
    """An ESP-IDF image was given, and esptool (the `esp` extra) is not installed."""

    def __init__(self) -> None:
        super().__init__(
            "reading ESP-IDF images needs esptool: pip install 'stamp-firmware[esp]' "
            "(or pip install esptool)"
        )


@dataclass(frozen=True)
class AppDesc:
    """The `esp_app_desc_t` ESP-IDF compiles into every app."""

    app_version: str
    """`App version:` (PROJECT_VER, e.g. a git describe)."""
    project_name: str
    """The project's name."""
    compile_time: str
    """Date and time of the compile as the boot log prints them ("Mar 18 2019 10:47:33")."""
    idf_version: str
    """The ESP-IDF version it was built with."""
    elf_sha256: str
    """The stored SHA-256 of the ELF, 64 lowercase hex (all zeros when never patched in)."""
    secure_version: int
    """The anti-rollback secure version."""
    min_efuse_blk_rev: str
    """Minimal eFuse block revision, "major.minor"."""
    max_efuse_blk_rev: str
    """Maximal eFuse block revision, "major.minor"."""
    mmu_page_size: int | None
    """The MMU page size in bytes, None when the field is 0 (older ESP-IDF)."""

    @property
    def elf_sha256_patched(self) -> bool:
        """The ELF hash was patched in (elf2image --elf-sha256-offset); else it is zeros."""
        return self.elf_sha256 != "0" * 64

    def to_json(self) -> dict[str, Any]:
        """Every field, by its name."""
        return asdict(self)


def _text(field: bytes) -> str:
    # C strings of full field width have no NUL (esp32c6-appdesc fixture): take all of it.
    return field.split(b"\0", 1)[0].decode("utf-8", errors="replace")


def _revision(full: int) -> str:
    return f"{full // 100}.{full % 100}"


# esp_app_desc_t (ESP-IDF components/esp_app_format/include/esp_app_desc.h): magic,
# secure_version, reserv1[2], version[32], project_name[32], time[16], date[16],
# idf_ver[32], app_elf_sha256[32], min/max_efuse_blk_rev_full, mmu_page_size (log2),
# reserv3[3], reserv2[18] (as u32).
_APP_DESC = struct.Struct("<II8s32s32s16s16s32s32sHHB3s72s")


def parse_app_desc(data: bytes) -> AppDesc | None:
    """The app description at the start of `data`, None when its magic is not there."""
    if len(data) < APP_DESC_SIZE:
        return None
    fields = _APP_DESC.unpack_from(data)
    magic, secure, _, version, project, time, date, idf, sha, min_rev, max_rev, mmu = fields[:12]
    if magic != APP_DESC_MAGIC:
        return None
    return AppDesc(
        app_version=_text(version),
        project_name=_text(project),
        compile_time=f"{_text(date)} {_text(time)}",
        idf_version=_text(idf),
        elf_sha256=sha.hex(),
        secure_version=secure,
        min_efuse_blk_rev=_revision(min_rev),
        max_efuse_blk_rev=_revision(max_rev),
        mmu_page_size=2**mmu if mmu else None,
    )


# --- .bin images --------------------------------------------------------------------------


@dataclass(frozen=True)
class EspSegment:
    """One segment of the image, as `esptool image-info` lists it."""

    address: int
    """Load address."""
    size: int
    """Length in bytes."""
    file_offset: int
    """Offset of its 8-byte segment header in the file."""
    memory: tuple[str, ...]
    """The memory types its address falls in (DROM, IROM, DRAM, ...)."""


@dataclass(frozen=True)
class EspImage:
    """An ESP-IDF (or other esptool-format) firmware image read by esptool."""

    chip: str
    """The chip as esptool names it, e.g. "ESP32-S2"."""
    chip_id: int
    """The extended header's chip id."""
    entry: int
    """Entry point address."""
    segments: tuple[EspSegment, ...]
    """The segments, in file order."""
    stored_checksum: int
    """The checksum byte stored after the segments."""
    computed_checksum: int
    """The checksum of the segments' contents."""
    digest_appended: bool
    """The extended header says a SHA-256 validation hash follows the checksum."""
    stored_digest: str | None
    """The stored validation hash (lowercase hex; None when not appended or cut off)."""
    computed_digest: str | None
    """The SHA-256 of the image up to the hash (None when not appended)."""
    app_desc: AppDesc | None
    """The app description; None for an image that has none (a bootloader)."""

    @property
    def checksum_ok(self) -> bool:
        return self.stored_checksum == self.computed_checksum

    @property
    def digest_ok(self) -> bool | None:
        """The validation hash matches (None when the image has none)."""
        if not self.digest_appended:
            return None
        return self.stored_digest is not None and self.stored_digest == self.computed_digest

    @property
    def elf_sha256(self) -> str | None:
        """The ELF hash the image stores, None when it has no app description or zeros."""
        if self.app_desc is None or not self.app_desc.elf_sha256_patched:
            return None
        return self.app_desc.elf_sha256

    def problems(self, name: str) -> list[str]:
        """What makes the image untrustworthy or unmatchable, one sentence each."""
        found = []
        if not self.checksum_ok:
            found.append(
                f"{name}'s stored checksum {self.stored_checksum:#04x} does not match its "
                f"segments ({self.computed_checksum:#04x}): a damaged or hand-edited image; "
                "rebuild it"
            )
        if self.digest_ok is False:
            what = "is cut off" if self.stored_digest is None else "does not match its content"
            found.append(
                f"{name}'s validation hash {what}: a half-written or edited image; rebuild it"
            )
        if self.app_desc is None:
            found.append(f"{name} is an ESP image without an app description (not an app)")
        elif not self.app_desc.elf_sha256_patched:
            found.append(
                f"{name} stores no ELF SHA-256 (all zeros), so it cannot be matched to its "
                "ELF: make it with `esptool elf2image --elf-sha256-offset 0xb0`, as ESP-IDF's "
                "build does"
            )
        return found

    def to_json(self) -> dict[str, Any]:
        """The `esp` object of `stamp inspect --json`."""
        return {
            "chip": self.chip,
            "chip_id": self.chip_id,
            "entry": self.entry,
            "segments": [
                {
                    "address": s.address,
                    "size": s.size,
                    "file_offset": s.file_offset,
                    "memory": list(s.memory),
                }
                for s in self.segments
            ],
            "checksum": self.stored_checksum,
            "computed_checksum": self.computed_checksum,
            "checksum_ok": self.checksum_ok,
            "validation_hash": self.stored_digest,
            "computed_validation_hash": self.computed_digest,
            "validation_hash_ok": self.digest_ok,
            "app_desc": self.app_desc.to_json() if self.app_desc else None,
        }


def looks_like_esp_image(data: bytes) -> bool:
    """`data` starts like an esptool image for an ESP32-family chip (no esptool needed)."""
    return (
        len(data) >= HEADER_SIZE
        and data[0] == ESP_IMAGE_MAGIC
        and 1 <= data[1] <= MAX_SEGMENTS
        and data[_APPEND_DIGEST_AT] in (0, 1)
    )


def read_esp_image(data: bytes, name: str) -> EspImage:
    """Read an ESP32-family image with esptool; ArtifactError when it cannot be read."""
    try:
        from esptool.bin_image import LoadFirmwareImage
        from esptool.targets import ROM_LIST
    except ImportError:
        raise EsptoolMissing() from None
    if not looks_like_esp_image(data):
        raise ArtifactError(f"{name} is not an ESP-IDF image (no 0xE9 image header)")
    chip_id = data[_CHIP_ID_AT]
    rom = next((r for r in ROM_LIST if getattr(r, "IMAGE_CHIP_ID", None) == chip_id), None)
    if rom is None:
        raise ArtifactError(f"{name} is an ESP image for an unknown chip id {chip_id}")
    try:
        image = LoadFirmwareImage(rom.CHIP_NAME, data)
        checksum = image.calculate_checksum()
        segments = tuple(
            EspSegment(s.addr, len(s.data), s.file_offs, tuple(s.get_memory_type(image)))
            for s in image.segments
        )
    # esptool reports a short or malformed image with FatalError, RuntimeError,
    # struct.error or a TypeError (ord() of the empty read past the end): all are "damaged".
    except Exception as exc:
        raise ArtifactError(
            f"{name} is a damaged ESP-IDF image ({_esptool_reason(exc)}): rebuild it",
            detail=repr(exc),
        ) from None
    stored = computed = None
    if image.append_digest:
        if len(image.stored_digest) == DIGEST_SIZE:
            stored = image.stored_digest.hex()
        computed = image.calc_digest.hex()
    desc = next((s for s in image.segments if "DROM" in s.get_memory_type(image)), None)
    return EspImage(
        chip=rom.CHIP_NAME,
        chip_id=chip_id,
        entry=image.entrypoint,
        segments=segments,
        stored_checksum=image.checksum,
        computed_checksum=checksum,
        digest_appended=bool(image.append_digest),
        stored_digest=stored,
        computed_digest=computed,
        app_desc=parse_app_desc(desc.data) if desc is not None else None,
    )


def _esptool_reason(exc: BaseException) -> str:
    if isinstance(exc, TypeError | struct.error):
        return "it ends before its checksum"
    text = str(exc.args[0]) if exc.args else type(exc).__name__
    return text.splitlines()[0] if text else type(exc).__name__


# --- ELFs ---------------------------------------------------------------------------------


def elf_app_desc(elf: ElfImage) -> AppDesc | None:
    """The app description in an ESP-IDF ELF (its stored ELF hash is zeros: the build
    patches the hash into the .bin only); None for any other ELF."""
    by_name = {s.name: s for s in elf.sections}
    for name in APPDESC_SECTIONS:
        section = by_name.get(name)
        if section is not None:
            start = section.lma - elf.base
            found = parse_app_desc(elf.image[start : start + min(section.size, APP_DESC_SIZE)])
            if found is not None:
                return found
    return None
