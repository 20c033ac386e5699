"""`stamp inspect` on real ELFs, real Particle module binaries, and things that are neither."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from stamp.artifact.particle.build import patch_suffix
from tests.support import FIXTURES, Stamp
from tests.support.elf import (
    GIT_A,
    RECORD,
    build_elf,
    objcopy_bin,
    readelf_build_id,
    sha256sum,
)
from tests.support.particle import SPEC_PARTICLE_KEYS

# The values binary-version-reader reports (fixtures/particle/README.md).
FIXTURE_TABLE = [
    ("040_user-part.bin", 6, 5, 1, 2, 0, 36, None, None, "b138f375",
     "f9f552aa98d7e3eab750862a01743024a4d05514021598a4341b3d83b37eda36"),
    ("p2-user-part.bin", 32, 5, 1, 6, 0, 62, 32, 48879, "0e3d4f63",
     "23b745ac727531a5d1278d32266fbb92c48150ed057c88c9bdebea962c06515d"),
    ("tracker-user-part-extensions.bin", 26, 5, 2, 6, 0, 190, 26, 3, "bb3d2c74",
     "1c3af4261e6d936379e2489e1d7815b153d8e27d4b3fe763206f78b7c2e3d304"),
    ("044_Core_Tinker_P5_V10.bin", 0, 3, 0, 0, 268, 40, 5, 10, "a24d58c0",
     "e7ffb08d8e0d9d72725dd106ba01fc42379e0cb2ea2131bd1b3af2a2b213aad0"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("name", "platform", "function", "index", "version", "prefix_offset", "suffix_size",
     "product_id", "product_version", "crc", "app_hash"),
    FIXTURE_TABLE,
)  # fmt: skip
def test_real_module_binaries(
    stamp: Stamp,
    name: str,
    platform: int,
    function: int,
    index: int,
    version: int,
    prefix_offset: int,
    suffix_size: int,
    product_id: int | None,
    product_version: int | None,
    crc: str,
    app_hash: str,
) -> None:
    path = FIXTURES / "particle" / name
    code, out, err = stamp("inspect", path, "--json")
    assert (code, err) == (0, "")
    report = json.loads(out)
    particle = report["particle"]
    assert set(particle) >= SPEC_PARTICLE_KEYS
    assert (particle["platform_id"], particle["module_function"]) == (platform, function)
    assert (particle["module_index"], particle["module_version"]) == (index, version)
    assert (particle["prefix_offset"], particle["suffix_size"]) == (prefix_offset, suffix_size)
    assert (particle["product_id"], particle["product_version"]) == (product_id, product_version)
    assert particle["stored_crc"] == crc
    assert particle["app_hash"] == app_hash == report["app_hash"]
    assert particle["sha_ok"] is True and particle["crc_ok"] is True
    assert report["kind"] == "module"
    assert report["image_sha256"] == report["file"]["sha256"] == sha256sum(path)

    code, text, _ = stamp("inspect", path)
    assert code == 0
    assert f"app hash       {app_hash}" in text
    assert "SHA-256        ok" in text
    assert f"CRC32          ok ({crc})" in text


@pytest.mark.toolchain
def test_elf(tmp_path: Path, stamp: Stamp) -> None:
    elf = build_elf(tmp_path, RECORD)
    reference = sha256sum(objcopy_bin(elf))
    code, text, err = stamp("inspect", elf)
    assert (code, err) == (0, "")
    assert text.startswith(f"{elf}: ELF 32-bit ARM, ")
    assert f"edit 112, git {GIT_A} (clean) at section .stamp + 0x0" in text
    assert f"build-id       {readelf_build_id(elf)}" in text
    assert f"image sha256   {reference}" in text
    assert "(runs at 0x20000000)" in text  # .data

    code, out, _ = stamp("inspect", elf, "--json")
    report = json.loads(out)
    assert code == 0
    assert (report["edit"], report["git"], report["dirty"]) == (112, GIT_A, False)
    assert report["build_id"] == readelf_build_id(elf)
    assert report["image_sha256"] == reference
    assert report["load_address"] == 0x08000000
    assert report["kind"] == "elf" and report["particle"] is None
    assert report["elf"]["machine"] == "EM_ARM"


@pytest.mark.toolchain
def test_particle_elf_shows_the_predicted_app_hash(tmp_path: Path, stamp: Stamp) -> None:
    elf = build_elf(tmp_path, RECORD, layout="particle")
    patched = tmp_path / "app.bin"
    patched.write_bytes(patch_suffix(objcopy_bin(elf).read_bytes()))
    code, out, _ = stamp("inspect", elf, "--json")
    assert code == 0
    from_elf = json.loads(out)
    code, out, _ = stamp("inspect", patched, "--json")
    assert code == 0
    from_bin = json.loads(out)
    assert from_elf["particle_from_elf"] is True
    assert from_elf["app_hash"] == from_bin["app_hash"] is not None
    assert from_bin["edit"] == 112  # the record is found in the .bin's raw bytes
    code, text, _ = stamp("inspect", elf)
    assert "placeholders patched as the build does" in text
    assert f"{from_bin['app_hash']} (what the built .bin holds)" in text


@pytest.mark.toolchain
def test_raw_bin_with_a_record(tmp_path: Path, stamp: Stamp) -> None:
    binary = objcopy_bin(build_elf(tmp_path, RECORD))
    code, text, _ = stamp("inspect", binary)
    assert code == 0
    assert text.startswith(f"{binary}: raw firmware image")
    assert "edit 112" in text


def test_damaged_module_is_shown_then_exit_2(tmp_path: Path, stamp: Stamp) -> None:
    data = bytearray((FIXTURES / "particle" / "040_user-part.bin").read_bytes())
    data[1000] ^= 0xFF
    damaged = tmp_path / "damaged.bin"
    damaged.write_bytes(bytes(data))
    code, out, err = stamp("inspect", damaged, "--json")
    assert code == 2
    report = json.loads(out)
    assert report["particle"]["sha_ok"] is False and report["particle"]["crc_ok"] is False
    assert report["app_hash"] is None
    assert "does not match its content" in err and err.count("\n") == 1
    code, text, err = stamp("inspect", damaged)
    assert code == 2 and "MISMATCH" in text


@pytest.mark.parametrize(
    "content",
    [b"hello, world\n", bytes(range(256)) * 64, b"\x7fELF", b"\x7fELF" + b"\x01" * 100],
    ids=["text", "noise", "elf-magic-only", "elf-garbage"],
)
def test_not_firmware_at_all(tmp_path: Path, stamp: Stamp, content: bytes) -> None:
    path = tmp_path / "thing"
    path.write_bytes(content)
    code, out, err = stamp("inspect", path)
    assert code == 2 and out == ""
    assert err.startswith("stamp: error: ") and err.count("\n") == 1
    assert "Traceback" not in err
    assert "not an ELF" in err or "neither an ELF" in err or "corrupt ELF" in err, err


@pytest.mark.toolchain
def test_unreadable_record_is_shown_then_exit_2(tmp_path: Path, stamp: Stamp) -> None:
    raw = bytearray(RECORD.pack())
    raw[8] = 9  # a layout this stamp does not read
    elf = build_elf(tmp_path, bytes(raw))
    code, text, err = stamp("inspect", elf)
    assert code == 2
    assert "build-id" in text and "PROBLEM" in text
    assert "layout version 9" in err and err.count("\n") == 1
