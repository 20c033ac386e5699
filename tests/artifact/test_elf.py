"""stamp.artifact.elf against the real toolchain: objcopy -O binary, readelf -n, sha256sum."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from stamp.artifact.elf import MAX_IMAGE_SIZE, read_elf, single_record
from stamp.artifact.image import load_file
from stamp.errors import ArtifactError
from stamp.record import RECORD_SIZE, StampRecord
from tests.support import require_tool
from tests.support.elf import (
    GIT_B,
    LAYOUTS,
    RECORD,
    build_elf,
    objcopy_bin,
    readelf_build_id,
    sha256sum,
)


@pytest.mark.toolchain
@pytest.mark.parametrize("layout", [*LAYOUTS, "particle"])
def test_image_is_what_objcopy_writes(tmp_path: Path, layout: str) -> None:
    elf = build_elf(tmp_path, RECORD, layout=layout)
    reference = objcopy_bin(elf)

    image = load_file(elf).elf
    assert image is not None
    assert image.image == reference.read_bytes()
    assert image.image_sha256 == sha256sum(reference)
    assert image.build_id == readelf_build_id(elf)
    if layout == "dropped":
        assert image.records == ()
    else:
        assert single_record(image.records, "app.elf") == RECORD


@pytest.mark.toolchain
def test_data_is_placed_at_its_load_address_not_its_run_address(tmp_path: Path) -> None:
    image = load_file(build_elf(tmp_path, RECORD, layout="flash_ram")).elf
    assert image is not None
    data = next(s for s in image.sections if s.name == ".data")
    assert data.vma == 0x20000000
    assert 0x08000000 < data.lma < 0x08040000
    offset = data.lma - image.base
    assert image.image[offset : offset + 4] == (0x12345678).to_bytes(4, "little")
    assert ".bss" not in {s.name for s in image.sections}


@pytest.mark.toolchain
def test_gaps_are_zero_filled(tmp_path: Path) -> None:
    image = load_file(build_elf(tmp_path, RECORD, layout="gaps")).elf
    assert image is not None
    stamp = next(s for s in image.sections if s.name == ".stamp")
    assert stamp.lma == 0x08001000
    text = next(s for s in image.sections if s.name == ".text")
    gap = image.image[text.lma + text.size - image.base : 0x400]
    assert gap and set(gap) == {0}


def test_host_elf64_matches_host_objcopy(tmp_path: Path) -> None:
    """A 64-bit little-endian PIE: p_paddr, 8-aligned .note.gnu.property, ELF64 headers."""
    gcc, objcopy = require_tool("gcc"), require_tool("objcopy")
    source = tmp_path / "host.c"
    source.write_text("int counter = 5;\nint main(void) { return counter; }\n")
    elf = tmp_path / "host"
    subprocess.run([gcc, "-O1", "-Wl,--build-id", "-o", str(elf), str(source)], check=True)
    subprocess.run([objcopy, "-O", "binary", str(elf), str(tmp_path / "host.bin")], check=True)

    image = load_file(elf).elf
    assert image is not None
    assert image.elf_class == 64
    assert image.image_sha256 == sha256sum(tmp_path / "host.bin")
    readelf = subprocess.run(
        [require_tool("readelf"), "-n", str(elf)], capture_output=True, text=True, check=True
    ).stdout
    assert f"Build ID: {image.build_id}" in readelf


@pytest.mark.toolchain
@pytest.mark.parametrize("style", ["sha1", "md5", "uuid", "0xdeadbeefcafef00d"])
def test_build_id_styles_match_readelf(tmp_path: Path, style: str) -> None:
    elf = build_elf(tmp_path, RECORD, extra_flags=(f"-Wl,--build-id={style}",))
    image = load_file(elf).elf
    assert image is not None
    assert image.build_id == readelf_build_id(elf)
    if style.startswith("0x"):
        assert image.build_id == "deadbeefcafef00d"


@pytest.mark.toolchain
def test_no_build_id(tmp_path: Path) -> None:
    image = load_file(build_elf(tmp_path, RECORD, extra_flags=("-Wl,--build-id=none",))).elf
    assert image is not None
    assert image.build_id is None


@pytest.mark.toolchain
def test_record_merged_into_text_is_found_in_the_image(tmp_path: Path) -> None:
    image = load_file(build_elf(tmp_path, RECORD, layout="merged")).elf
    assert image is not None
    assert ".stamp" not in {s.name for s in image.sections}
    [found] = image.records
    assert found.record == RECORD
    assert found.where.startswith("address 0x08") or found.where.startswith("address 0x8")


@pytest.mark.toolchain
def test_record_with_unknown_git_and_dirty(tmp_path: Path) -> None:
    record = StampRecord(edit=3, git="unknown", dirty=None)
    image = load_file(build_elf(tmp_path, record)).elf
    assert image is not None
    assert single_record(image.records, "x") == record


@pytest.mark.toolchain
def test_identical_records_are_one(tmp_path: Path) -> None:
    image = load_file(build_elf(tmp_path, RECORD, RECORD)).elf
    assert image is not None
    assert len(image.records) == 2
    assert single_record(image.records, "app.elf") == RECORD


@pytest.mark.toolchain
def test_different_records_are_an_error(tmp_path: Path) -> None:
    other = StampRecord(edit=113, git=GIT_B, dirty=True)
    image = load_file(build_elf(tmp_path, RECORD, other)).elf
    assert image is not None
    with pytest.raises(ArtifactError, match="2 different stamp records") as err:
        single_record(image.records, "app.elf")
    assert "edit 112" in str(err.value) and "edit 113" in str(err.value)


@pytest.mark.toolchain
@pytest.mark.parametrize(
    ("patch", "expected"),
    [
        ((8, b"\x02\x00"), "layout version 2"),
        ((0, b"STAMPRED"), "no stamp record"),
        ((10, b"\x40\x00"), "size 64"),
        ((16, b"\x07"), "dirty flag"),
        ((20, b"zz"), "malformed git SHA"),
    ],
)
def test_bad_record_in_stamp_section_is_reported(
    tmp_path: Path, patch: tuple[int, bytes], expected: str
) -> None:
    raw = bytearray(RECORD.pack())
    at, data = patch
    raw[at : at + len(data)] = data
    image = load_file(build_elf(tmp_path, bytes(raw))).elf
    assert image is not None
    assert image.records == ()
    assert image.record_problem is not None and expected in image.record_problem


@pytest.mark.toolchain
def test_newer_layout_merged_into_text_is_reported_not_ignored(tmp_path: Path) -> None:
    raw = bytearray(RECORD.pack())
    raw[8:10] = b"\x02\x00"
    image = load_file(build_elf(tmp_path, bytes(raw), layout="merged")).elf
    assert image is not None
    assert image.record_problem is not None and "layout version 2" in image.record_problem


@pytest.mark.toolchain
def test_symbols_and_debug_info_are_never_read(tmp_path: Path) -> None:
    """Wipe .symtab, .strtab and every .debug_* section: the identity is unchanged."""
    from elftools.elf.elffile import ELFFile

    elf = build_elf(tmp_path, RECORD, extra_flags=("-g",))
    before = load_file(elf).elf
    data = bytearray(elf.read_bytes())
    with elf.open("rb") as fp:
        wiped = [
            (s["sh_offset"], s["sh_size"], s.name)
            for s in ELFFile(fp).iter_sections()
            if s.name in (".symtab", ".strtab") or s.name.startswith(".debug")
        ]
    assert {".symtab", ".strtab", ".debug_info"} <= {name for _, _, name in wiped}
    for offset, size, _ in wiped:
        data[offset : offset + size] = b"\xff" * size
    elf.write_bytes(bytes(data))
    after = load_file(elf).elf
    assert after == before


@pytest.mark.toolchain
def test_wild_load_address_is_refused_not_allocated(tmp_path: Path) -> None:
    """`.data` without `AT> FLASH`: objcopy would write ~384 MiB; stamp explains instead."""
    script = LAYOUTS["flash_ram"].replace("> RAM AT> FLASH", "> RAM")
    elf = build_elf(tmp_path, RECORD, layout="flash_ram")
    (tmp_path / "app.ld").write_text(script)
    subprocess.run(
        [
            require_tool("arm-none-eabi-gcc"),
            "-mcpu=cortex-m3",
            "-mthumb",
            "-nostdlib",
            "-T",
            str(tmp_path / "app.ld"),
            "-o",
            str(elf),
            str(tmp_path / "app.c"),
        ],
        check=True,
    )
    with pytest.raises(ArtifactError, match=r"AT> FLASH") as err:
        load_file(elf)
    assert str(MAX_IMAGE_SIZE) not in str(err.value)  # it names the span, not the limit
    assert ".data" in str(err.value)


def test_read_elf_on_bytes_that_are_not_elf() -> None:
    import io

    with pytest.raises(ArtifactError, match="not an ELF file"):
        read_elf(io.BytesIO(b"\x00" * RECORD_SIZE), "x.bin")
    with pytest.raises(ArtifactError, match="is empty"):
        read_elf(io.BytesIO(b""), "x.elf")


def test_single_record_of_nothing_is_none() -> None:
    assert single_record([], "x") is None
