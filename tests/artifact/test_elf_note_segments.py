"""Notes from program headers when the section headers cannot give them (issue 10 item 17).

Checked against GNU readelf: whatever `arm-none-eabi-readelf -n` reports as the build-id of
a damaged file, stamp reports too, or stamp refuses the file; never "no build-id".
"""

from __future__ import annotations

import struct
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from stamp.artifact.image import load_bytes
from stamp.artifact.inspection import inspect_firmware
from stamp.errors import ArtifactError
from tests.support import require_tool
from tests.support.elf import RECORD, build_elf, objcopy_bin, readelf_build_id

E_SHOFF, E_SHNUM, E_SHSTRNDX = 32, 48, 50
SH_TYPE = 4
SHT_PROGBITS = 1


def _section_offset(data: bytes, index: int) -> int:
    return struct.unpack_from("<I", data, E_SHOFF)[0] + 40 * index


def _note_index(data: bytes) -> int:
    shnum = struct.unpack_from("<H", data, E_SHNUM)[0]
    for index in range(shnum):
        if struct.unpack_from("<I", data, _section_offset(data, index) + SH_TYPE)[0] == 7:
            return index
    raise AssertionError("no SHT_NOTE section")


def _note_not_a_note(data: bytes) -> bytes:
    out = bytearray(data)
    struct.pack_into("<I", out, _section_offset(data, _note_index(data)) + SH_TYPE, SHT_PROGBITS)
    return bytes(out)


def _no_section_headers(data: bytes) -> bytes:
    out = bytearray(data)
    struct.pack_into("<I", out, E_SHOFF, 0)
    struct.pack_into("<HH", out, E_SHNUM, 0, 0)
    return bytes(out)


DAMAGE: dict[str, Callable[[bytes], bytes]] = {
    "note section typed PROGBITS": _note_not_a_note,
    "no section headers": _no_section_headers,
}


@pytest.fixture(scope="module")
def elf(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_elf(tmp_path_factory.mktemp("notes"), RECORD, extra_flags=("-Wl,-n", "-s"))


@pytest.mark.parametrize("damage", sorted(DAMAGE))
def test_build_id_as_readelf_finds_it(elf: Path, tmp_path: Path, damage: str) -> None:
    damaged = tmp_path / "damaged.elf"
    damaged.write_bytes(DAMAGE[damage](elf.read_bytes()))
    expected = readelf_build_id(damaged)  # GNU readelf still finds it, from PT_NOTE
    assert expected == readelf_build_id(elf)
    try:
        info = inspect_firmware(load_bytes(damaged.read_bytes(), "damaged.elf"))
    except ArtifactError as exc:  # refusing is allowed; "no build-id" is not
        assert "section headers" in str(exc)
        objcopy = require_tool("arm-none-eabi-objcopy")
        done = subprocess.run(
            [objcopy, "-O", "binary", str(damaged), str(tmp_path / "x.bin")],
            capture_output=True,
            check=False,
        )
        assert done.returncode != 0  # objcopy cannot make an image of it either
        return
    assert info.to_json()["build_id"] == expected
    reference = objcopy_bin(damaged, tmp_path / "ref.bin").read_bytes()
    assert info.to_json()["image_size"] == len(reference)
