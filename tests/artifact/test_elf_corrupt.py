"""Corrupt input (after pyelftools' test_corrupt_files.py): every truncation, thousands of
random byte flips and absurd header values give one clean ArtifactError, never another
exception, and never a manifest."""

from __future__ import annotations

import random
import struct
from pathlib import Path

import pytest

from stamp.artifact.build import build_manifest
from stamp.artifact.image import Firmware, load_bytes
from stamp.artifact.inspection import inspect_firmware
from stamp.artifact.particle.build import patch_suffix
from stamp.errors import ArtifactError
from tests.support.elf import RECORD, build_elf, objcopy_bin

SEED = 20261130
FLIPS = 2000

# ELF32 header field offsets, and section / program header entry layouts.
E_PHOFF, E_SHOFF, E_PHNUM, E_SHENTSIZE, E_SHNUM, E_SHSTRNDX = 28, 32, 44, 46, 48, 50
SH_NAME, SH_TYPE, SH_ADDR, SH_OFFSET, SH_SIZE, SH_ADDRALIGN = 0, 4, 12, 16, 20, 32
P_OFFSET, P_PADDR, P_FILESZ = 4, 12, 16


@pytest.fixture(scope="module")
def small_elf(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    """A stripped, non-page-aligned ELF of about 1 KB, so every offset can be cut."""
    directory = tmp_path_factory.mktemp("small")
    return build_elf(directory, RECORD, extra_flags=("-Wl,-n", "-s")).read_bytes()


@pytest.fixture(scope="module")
def particle_pair(tmp_path_factory: pytest.TempPathFactory) -> tuple[bytes, bytes]:
    """(ELF, patched .bin) of a small Particle-style user part."""
    directory = tmp_path_factory.mktemp("particle")
    elf = build_elf(directory, RECORD, layout="particle", extra_flags=("-Wl,-n", "-s"))
    return elf.read_bytes(), patch_suffix(objcopy_bin(elf).read_bytes())


def _clean_error(exc: ArtifactError) -> None:
    text = str(exc)
    assert text and "\n" not in text and "Traceback" not in text, text


def _describe(data: bytes) -> Firmware | None:
    """load + inspect + manifest, the way the commands use them; None for a clean error."""
    try:
        firmware = load_bytes(data, "app.elf")
        inspect_firmware(firmware)
        build_manifest(
            firmware if firmware.elf else None,
            None if firmware.elf else firmware,
            manifest_dir=Path("."),
            recorded_at="2026-01-01T00:00:00Z",
            allow_unstamped=True,
        )
    except ArtifactError as exc:
        _clean_error(exc)
        return None
    return firmware


def test_every_truncation_of_an_elf(small_elf: bytes) -> None:
    outcomes = [_describe(small_elf[:size]) for size in range(len(small_elf))]
    assert outcomes[0] is None
    # Cutting before the section header table (at the end) always breaks the file.
    assert all(o is None for o in outcomes[: len(small_elf) - 40 * 4])
    assert _describe(small_elf) is not None


def test_random_byte_flips_in_an_elf(small_elf: bytes) -> None:
    rng = random.Random(SEED)
    survived = 0
    for _ in range(FLIPS):
        data = bytearray(small_elf)
        for _ in range(rng.randint(1, 4)):
            data[rng.randrange(len(data))] ^= 1 << rng.randrange(8)
        survived += _describe(bytes(data)) is not None
    assert 0 < survived < FLIPS  # some flips land in harmless bytes, many do not


def test_random_byte_flips_in_the_elf_header(small_elf: bytes) -> None:
    rng = random.Random(SEED + 1)
    for _ in range(FLIPS // 3):
        data = bytearray(small_elf)
        at = rng.randrange(52)
        data[at] = rng.randrange(256)
        _describe(bytes(data))


def _section_table(data: bytes) -> tuple[int, int, int]:
    shoff = struct.unpack_from("<I", data, E_SHOFF)[0]
    shnum, shstrndx = struct.unpack_from("<HH", data, E_SHNUM)
    return shoff, shnum, shstrndx


def _section_index(data: bytes, wanted: str) -> int:
    shoff, shnum, shstrndx = _section_table(data)
    strtab_offset = struct.unpack_from("<I", data, shoff + 40 * shstrndx + SH_OFFSET)[0]
    for index in range(shnum):
        name_at = strtab_offset + struct.unpack_from("<I", data, shoff + 40 * index)[0]
        if data[name_at : data.index(b"\0", name_at)].decode() == wanted:
            return index
    raise AssertionError(f"no section {wanted}")


def _patched(data: bytes, at: int, fmt: str, value: int) -> bytes:
    out = bytearray(data)
    struct.pack_into(fmt, out, at, value)
    return bytes(out)


def _section_field(data: bytes, section: str, field: int, value: int) -> bytes:
    shoff = _section_table(data)[0]
    return _patched(data, shoff + 40 * _section_index(data, section) + field, "<I", value)


ABSURD = {
    "e_shoff past the end": lambda d: _patched(d, E_SHOFF, "<I", 0xFFFFFF00),
    "e_shoff at the last byte": lambda d: _patched(d, E_SHOFF, "<I", len(d) - 1),
    "e_shnum 65535": lambda d: _patched(d, E_SHNUM, "<H", 0xFFFF),
    "e_shentsize 1": lambda d: _patched(d, E_SHENTSIZE, "<H", 1),
    "e_shstrndx 999": lambda d: _patched(d, E_SHSTRNDX, "<H", 999),
    "e_phoff past the end": lambda d: _patched(d, E_PHOFF, "<I", 0xFFFFFFF0),
    "e_phnum 65535": lambda d: _patched(d, E_PHNUM, "<H", 0xFFFF),
    ".text sh_size 4 GiB": lambda d: _section_field(d, ".text", SH_SIZE, 0xFFFFFFFF),
    ".text sh_offset 4 GiB": lambda d: _section_field(d, ".text", SH_OFFSET, 0xFFFFFF00),
    ".stamp sh_size 4 GiB": lambda d: _section_field(d, ".stamp", SH_SIZE, 0xFFFFFFFF),
    ".stamp sh_addr 0xfffffff0": lambda d: _section_field(d, ".stamp", SH_ADDR, 0xFFFFFFF0),
    ".note sh_size 4 GiB": lambda d: _section_field(d, ".note.gnu.build-id", SH_SIZE, 0xFFFFFFFF),
    ".note sh_addralign 8": lambda d: _section_field(d, ".note.gnu.build-id", SH_ADDRALIGN, 8),
    ".shstrtab sh_offset past the end": lambda d: _section_field(
        d, ".shstrtab", SH_OFFSET, 0x7FFFFFFF
    ),
    "sh_name past .shstrtab": lambda d: _section_field(d, ".text", SH_NAME, 0x7FFFFFFF),
    "sh_type unknown": lambda d: _section_field(d, ".text", SH_TYPE, 0x6FFF1234),
    "segment p_paddr 0xfffffff0": lambda d: _patched(
        d, struct.unpack_from("<I", d, E_PHOFF)[0] + P_PADDR, "<I", 0xFFFFFFF0
    ),
    "segment p_filesz 4 GiB": lambda d: _patched(
        d, struct.unpack_from("<I", d, E_PHOFF)[0] + P_FILESZ, "<I", 0xFFFFFFFF
    ),
    "segment p_offset 4 GiB": lambda d: _patched(
        d, struct.unpack_from("<I", d, E_PHOFF)[0] + P_OFFSET, "<I", 0xFFFFFFFF
    ),
    "EI_CLASS 7": lambda d: _patched(d, 4, "<B", 7),
    "EI_DATA big-endian": lambda d: _patched(d, 5, "<B", 2),
    "only the magic": lambda d: d[:4],
}


@pytest.mark.parametrize("case", sorted(ABSURD))
def test_absurd_header_values(small_elf: bytes, case: str) -> None:
    data = ABSURD[case](small_elf)
    try:
        firmware = load_bytes(data, "app.elf")
        inspect_firmware(firmware)
    except ArtifactError as exc:
        _clean_error(exc)
        assert "app.elf" in str(exc)


def test_absurd_sizes_do_not_allocate_them(small_elf: bytes) -> None:
    """The 4 GiB claims are refused by a bounds check, before any read of that size."""
    for case in (".text sh_size 4 GiB", ".stamp sh_size 4 GiB", ".note sh_size 4 GiB"):
        with pytest.raises(ArtifactError, match="past the end of the"):
            load_bytes(ABSURD[case](small_elf), "app.elf")


def test_every_truncation_of_a_module_bin(particle_pair: tuple[bytes, bytes]) -> None:
    elf_bytes, good = particle_pair
    elf = load_bytes(elf_bytes, "app.elf")
    for size in range(len(good)):
        cut = load_bytes(good[:size], "app.bin") if size else None
        if cut is None:
            continue
        with pytest.raises(ArtifactError) as err:
            build_manifest(elf, cut, manifest_dir=Path("."), recorded_at="x")
        _clean_error(err.value)
        # Alone, a cut module is never mistaken for a good one either.
        try:
            inspection = inspect_firmware(cut)
        except ArtifactError as exc:
            _clean_error(exc)
        else:
            assert inspection.problems or inspection.module is None


def test_random_byte_flips_in_a_module_bin(particle_pair: tuple[bytes, bytes]) -> None:
    elf_bytes, good = particle_pair
    elf = load_bytes(elf_bytes, "app.elf")
    rng = random.Random(SEED + 2)
    for _ in range(FLIPS):
        data = bytearray(good)
        data[rng.randrange(len(data))] ^= 1 << rng.randrange(8)
        damaged = load_bytes(bytes(data), "app.bin")
        # Every single-bit flip changes the CRC or the SHA: the pair never passes.
        with pytest.raises(ArtifactError) as err:
            build_manifest(elf, damaged, manifest_dir=Path("."), recorded_at="x")
        _clean_error(err.value)
        with pytest.raises(ArtifactError):
            build_manifest(None, damaged, manifest_dir=Path("."), recorded_at="x")
