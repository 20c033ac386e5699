"""Particle modules: real module binaries, every layout, the builder and the patcher."""

from __future__ import annotations

import dataclasses
import gzip
import hashlib
import io
import json
import random
import struct
import subprocess
import zlib
from pathlib import Path
from typing import Any

import pytest

from stamp.artifact.particle import module as particle
from stamp.artifact.particle.build import build_user_part, patch_suffix
from stamp.artifact.particle.format import MODULE_FUNCTION_NAMES, PLATFORM_NAMES, ModuleError
from stamp.artifact.particle.module import (
    Dependency,
    ModuleInfo,
    is_module,
    parse_module,
    read_module,
)
from stamp.errors import ArtifactError, StampError
from tests.support import require_tool
from tests.support.particle import (
    extension,
    fixture_bytes,
    fixture_path,
    le,
    module_image,
    vector_table,
)

SPEC_KEYS = {
    "app_hash",
    "sha_ok",
    "crc_ok",
    "stored_crc",
    "platform_id",
    "module_function",
    "module_index",
    "module_version",
    "start_address",
    "end_address",
    "prefix_offset",
    "flags",
    "suffix_size",
    "product_id",
    "product_version",
    "dependencies",
}

# The README table of /work/shared/fixtures/particle: what binary-version-reader reports.
README_TABLE = [
    pytest.param(
        "040_user-part.bin",
        dict(
            platform_id=6,
            module_function=5,
            module_index=1,
            module_version=2,
            prefix_offset=0,
            suffix_size=36,
            product_id=None,
            product_version=None,
            stored_crc="b138f375",
            app_hash="f9f552aa98d7e3eab750862a01743024a4d05514021598a4341b3d83b37eda36",
            dependencies=(Dependency(4, 2, 1),),
        ),
        id="040-user-part",
    ),
    pytest.param(
        "p2-user-part.bin",
        dict(
            platform_id=32,
            module_function=5,
            module_index=1,
            module_version=6,
            prefix_offset=0,
            suffix_size=62,
            product_id=32,
            product_version=48879,
            stored_crc="0e3d4f63",
            app_hash="23b745ac727531a5d1278d32266fbb92c48150ed057c88c9bdebea962c06515d",
            dependencies=(Dependency(4, 1, 5001),),
        ),
        id="p2-user-part",
    ),
    pytest.param(
        "tracker-user-part-extensions.bin",
        dict(
            platform_id=26,
            module_function=5,
            module_index=2,
            module_version=6,
            prefix_offset=0,
            suffix_size=190,
            product_id=26,
            product_version=3,
            stored_crc="bb3d2c74",
            app_hash="1c3af4261e6d936379e2489e1d7815b153d8e27d4b3fe763206f78b7c2e3d304",
            dependencies=(Dependency(4, 1, 5301),),
        ),
        id="tracker-extensions",
    ),
    pytest.param(
        "044_Core_Tinker_P5_V10.bin",
        dict(
            platform_id=0,
            module_function=3,
            module_index=0,
            module_version=0,
            prefix_offset=268,
            suffix_size=40,
            product_id=5,
            product_version=10,
            stored_crc="a24d58c0",
            app_hash="e7ffb08d8e0d9d72725dd106ba01fc42379e0cb2ea2131bd1b3af2a2b213aad0",
            dependencies=(),
        ),
        id="core-monolithic",
    ),
]
FIXTURE_NAMES = [p.values[0] for p in README_TABLE]


@pytest.mark.parametrize(("name", "expected"), README_TABLE)
def test_real_binaries_match_the_reference_parser(name: str, expected: dict[str, Any]) -> None:
    info = parse_module(fixture_bytes(name))
    got = {key: getattr(info, key) for key in expected}
    assert got == expected
    assert info.crc_ok and info.sha_ok and info.suffix_valid
    assert info.computed_crc == info.stored_crc
    assert info.computed_sha256 == info.app_hash
    assert info.problems == ()
    assert info.module_size == len(fixture_bytes(name))


@pytest.mark.parametrize("name", FIXTURE_NAMES)
def test_to_json_has_exactly_the_spec_keys_and_is_json(name: str) -> None:
    info = parse_module(fixture_bytes(name))
    record = info.to_json()
    assert set(record) >= SPEC_KEYS
    assert json.loads(json.dumps(record)) == record
    assert record["dependencies"] == [dataclasses.asdict(d) for d in info.dependencies]
    assert record["platform_name"] == PLATFORM_NAMES[info.platform_id]
    assert record["module_function_name"] == MODULE_FUNCTION_NAMES[info.module_function]


def test_to_json_gives_null_where_a_value_is_absent() -> None:
    record = parse_module(fixture_bytes("040_user-part.bin")).to_json()
    assert record["product_id"] is None and record["product_version"] is None
    padded = parse_module(module_image(prefix_offset=0x200, pad_to=4096)).to_json()
    assert all(padded[k] is None for k in ("app_hash", "sha_ok", "suffix_size", "product_id"))


def gzip_crc32(data: bytes, tmp_path: Path) -> str:
    """CRC32 of `data` from the gzip tool's own trailer (RFC 1952: CRC32 little-endian)."""
    source = tmp_path / "crc-input"
    source.write_bytes(data)
    done = subprocess.run(
        [require_tool("gzip"), "-c", "-n", str(source)], capture_output=True, check=True
    )
    return done.stdout[-8:-4][::-1].hex()


def sha256sum(data: bytes, tmp_path: Path) -> str:
    source = tmp_path / "sha-input"
    source.write_bytes(data)
    done = subprocess.run(
        [require_tool("sha256sum"), str(source)], capture_output=True, text=True, check=True
    )
    return done.stdout.split()[0]


INDEPENDENT_TABLE = [
    *(pytest.param(fixture_bytes(name), id=name) for name in FIXTURE_NAMES),
    pytest.param(build_user_part(b"stamp" * 40), id="built-36"),
    pytest.param(build_user_part(b"x" * 7, product_id=1234, product_version=5), id="built-40"),
    pytest.param(build_user_part(b"\0" * 300, product_id=9, tlv_suffix=True), id="built-62"),
    pytest.param(module_image(prefix_offset=0x184, product=(7, 3)), id="gen2-system-part"),
]


@pytest.mark.parametrize("data", INDEPENDENT_TABLE)
def test_checksums_agree_with_gzip_and_sha256sum(data: bytes, tmp_path: Path) -> None:
    info = parse_module(data)
    assert info.stored_crc == data[-4:].hex()
    assert info.computed_crc == gzip_crc32(data[:-4], tmp_path) == info.stored_crc
    assert info.app_hash == data[-38:-6].hex()
    assert info.computed_sha256 == sha256sum(data[:-38], tmp_path) == info.app_hash
    # ...and with Python's own zlib/hashlib, as a script would compute them.
    assert info.stored_crc == f"{zlib.crc32(data[:-4]):08x}"
    assert info.app_hash == hashlib.sha256(data[:-38]).hexdigest()
    assert gzip.decompress(gzip.compress(data)) == data


# --- layouts no fixture covers (built by tests/particle_support.py) ------------------------

GEN3_START = 0x000D4000


@pytest.mark.parametrize(
    ("image", "expected"),
    [
        pytest.param(
            module_image(prefix_offset=0x184, function=4, index=1, deps=((4, 2, 1),)),
            dict(prefix_offset=0x184, module_function=4, suffix_size=36),
            id="gen2-system-part-0x184",
        ),
        pytest.param(
            module_image(prefix_offset=0x200, start=GEN3_START, platform=12, deps=((2, 0, 1100),)),
            dict(prefix_offset=0x200, platform_id=12, start_address=GEN3_START),
            id="gen3-system-part-0x200",
        ),
        pytest.param(
            module_image(prefix_offset=0xC0, platform=103, start=0x18000),
            dict(prefix_offset=0xC0, platform_id=103, suffix_size=36),
            id="bluz-0xC0-unknown-platform",
        ),
        pytest.param(
            module_image(prefix_offset=0x10C, platform=0, function=3, index=0, product=(5, 10)),
            dict(prefix_offset=0x10C, product_id=5, product_version=10),
            id="core-0x10C",
        ),
        pytest.param(
            module_image(prefix_offset=0x400, function=2, index=0),
            dict(prefix_offset=0x400, module_function=2),
            id="scan-finds-0x400",
        ),
        pytest.param(
            module_image(prefix_offset=0x1FFC, body=bytes(64)),
            dict(prefix_offset=0x1FFC),
            id="scan-finds-just-below-8KiB",
        ),
        pytest.param(
            module_image(function=5, product=(0xFFFF, 0xFFFF)),
            dict(suffix_size=40, product_id=None, product_version=None),
            id="suffix-40-unset-product",
        ),
        pytest.param(
            module_image(function=5, product=(0xFFFF, 17)),
            dict(suffix_size=40, product_id=None, product_version=17),
            id="suffix-40-only-version",
        ),
        pytest.param(
            module_image(flags=0x02 | 0x08, function=5),
            dict(flags=0x0A),
            id="compressed-encrypted-flags",
        ),
        pytest.param(
            module_image(function=5, deps=((4, 1, 3), (2, 0, 7))),
            dict(dependencies=(Dependency(4, 1, 3), Dependency(2, 0, 7))),
            id="two-dependencies",
        ),
    ],
)
def test_layouts(image: bytes, expected: dict[str, Any]) -> None:
    info = parse_module(image)
    assert {key: getattr(info, key) for key in expected} == expected
    assert info.crc_ok and info.sha_ok and info.suffix_valid
    assert info.app_hash == image[-38:-6].hex()
    assert info.problems == ()  # an unknown platform is reported by number, not as a problem


def test_a_padded_bootloader_has_its_prefix_but_no_invented_suffix() -> None:
    image = module_image(
        prefix_offset=0x200,
        start=0x000F4000,
        platform=12,
        function=2,
        index=0,
        version=1100,
        product=(0xFFFF, 0xFFFF),
        pad_to=48 * 1024,
    )
    info = parse_module(image)
    assert (info.prefix_offset, info.module_function, info.module_version) == (0x200, 2, 1100)
    assert info.module_size < len(image)
    assert not info.suffix_valid
    assert (info.app_hash, info.sha_ok, info.computed_sha256) == (None, None, None)
    assert (info.suffix_size, info.product_id, info.product_version) == (None, None, None)
    assert info.stored_crc == "ffffffff" and not info.crc_ok
    assert any("padded past the module end" in p for p in info.problems)


def test_a_combined_image_says_so() -> None:
    # Another module follows this one: no padding, but this module's own CRC32 holds.
    first = module_image(flags=0x04, function=5)
    info = parse_module(first + module_image(prefix_offset=0x184, platform=6))
    assert info.prefix_offset == 0 and info.module_size == len(first)
    assert not info.suffix_valid and info.app_hash is None
    assert any("combined" in p for p in info.problems)


@pytest.mark.parametrize(
    ("image", "platform_id"),
    [
        pytest.param(module_image(prefix_offset=0x184, pad_to=16384), 6, id="ff-padding"),
        pytest.param(
            module_image(prefix_offset=0x184, pad_to=16384).replace(b"\xff" * 64, bytes(64)),
            6,
            id="zero-padding",
        ),
        pytest.param(
            module_image(prefix_offset=0xC0, platform=103, start=0x18000, pad_to=8192),
            103,
            id="padded-unknown-platform",
        ),
    ],
)
def test_imperfect_padded_modules_are_still_modules(image: bytes, platform_id: int) -> None:
    info = parse_module(image)
    assert info.platform_id == platform_id and not info.suffix_valid
    assert any("padded past the module end" in p for p in info.problems)


def test_junk_after_a_module_is_accepted_only_when_the_module_crc_holds() -> None:
    image = module_image(prefix_offset=0x200) + bytes(range(256)) * 8
    assert parse_module(image).prefix_offset == 0x200
    damaged = bytearray(image)
    damaged[0x300] ^= 0x55  # inside the module: its own CRC32 no longer holds
    with pytest.raises(ModuleError, match="not a Particle module"):
        parse_module(bytes(damaged))


@pytest.mark.parametrize(
    "fields",
    [dict(platform=4242), dict(function=12), dict(flags=0x80), dict(platform=4242, function=12)],
)
def test_a_module_with_unknown_fields_is_read_when_its_checksums_hold(
    fields: dict[str, int],
) -> None:
    image = module_image(**fields)
    info = parse_module(image)
    # Unknown codes are reported by number, not as problems; unknown flag bits are.
    assert info.crc_ok and info.sha_ok and len(info.problems) == ("flags" in fields)
    assert (info.platform_id, info.module_function) == (
        fields.get("platform", 6),
        fields.get("function", 4),
    )
    damaged = bytearray(image)
    damaged[100] ^= 1
    if len(fields) == 1:  # one anomaly (score 6): still read, with failing checksums
        assert not parse_module(bytes(damaged)).crc_ok
    else:  # two anomalies and no checksum holds: nothing left to trust
        assert not is_module(bytes(damaged))


def test_three_unknown_fields_with_a_whole_file_prefix_and_good_checksums_are_a_module() -> None:
    """The prefix claims exactly the file and the CRC over all of it holds: a module."""
    image = module_image(platform=4242, function=12, flags=0x80)
    info = parse_module(image)
    assert (info.platform_id, info.module_function, info.flags) == (4242, 12, 0x80)
    assert is_module(image) and info.crc_ok
    damaged = bytearray(image)
    damaged[100] ^= 1  # no checksum holds any more: nothing left to trust
    assert not is_module(bytes(damaged))


def _with_decoy_at_zero(image: bytes) -> bytes:
    """`image` (prefix at 16) with a decoy prefix at offset 0 that scores higher than the
    real one but claims less than the file; SHA-256 and CRC32 recomputed."""
    decoy = struct.pack("<IIBBHHBB", 0x1000, 0x1000 + 100, 0, 0, 1, 6, 5, 0)
    body = decoy + image[16:-38]
    body += hashlib.sha256(body).digest() + struct.pack("<H", 36)
    return body + zlib.crc32(body).to_bytes(4, "big")


def test_unknown_platform_and_function_129_at_offset_16_are_reported_not_damage() -> None:
    """Issue 10 item 18: codes stamp does not know, a prefix consistent with the file and a
    good CRC are a module (Particle's parser reads it), even next to a higher-scoring decoy."""
    start = 0x08020004  # the decoy's dependencies are these bytes: known function codes
    for pad in range(256):
        image = module_image(
            prefix_offset=16, start=start, platform=129, function=129, body=bytes(600 + pad)
        )
        if 1 <= (start + len(image) - 4) & 0xFF <= 9:
            break
    image = _with_decoy_at_zero(image)
    info = parse_module(image)
    assert (info.prefix_offset, info.platform_id, info.module_function) == (16, 129, 129)
    assert info.crc_ok and info.sha_ok and info.problems == ()
    assert info.platform_name is None and info.module_function_name is None


def test_a_plain_cortex_m_binary_is_not_a_module() -> None:
    # What a non-Particle .bin looks like: vector table, Thumb code, then data full of
    # flash/RAM pointers and zeros (the kind of bytes that look like a prefix by chance).
    rng = random.Random(5)
    image = vector_table(0x100, 0x00000000)
    image += rng.randbytes(6000)
    for i in range(400):
        image += le(0x00001000 + 8 * i, 4) + le(0x20000000 + 4 * rng.randrange(64), 4)
        image += bytes(rng.choice([0, 4, 8]))
    assert not is_module(image)
    with pytest.raises(ModuleError, match="not a Particle module"):
        parse_module(image)


def test_a_scan_match_beats_an_earlier_weaker_candidate() -> None:
    # Offset 0 holds a prefix that fits the file but names an unknown function and
    # platform; the real one at 0x300 matches exactly and wins, as in the reference.
    image = bytearray(module_image(prefix_offset=0x300, function=5))
    decoy = le(0x1000, 4) + le(0x1100, 4) + bytes(4) + le(999, 2) + le(77, 1) + bytes(9)
    image[0:24] = decoy
    info = parse_module(bytes(image))
    assert info.prefix_offset == 0x300
    assert not info.crc_ok  # the decoy changed the CRC'd bytes


def test_prefix_extensions_are_read_up_to_their_end() -> None:
    exts = extension(0x11, b"tinker") + extension(0x03, bytes([4, 1]) + le(5, 2) + le(9, 4))
    exts += extension(0, b"")
    info = parse_module(module_image(function=5, flags=0x10, prefix_extensions=exts))
    assert [(e.type, e.where, dict(e.values)) for e in info.extensions] == [
        (0x11, "prefix", {"name": "tinker"}),
        (
            0x03,
            "prefix",
            {"module_function": 4, "module_index": 1, "module_version": 5, "target_id": 9},
        ),
        (0, "prefix", {}),
    ]
    assert info.extensions[0].offset == 24 and info.problems == ()


def test_prefix_extensions_without_an_end_are_a_problem_not_an_error() -> None:
    image = module_image(function=5, flags=0x10, prefix_extensions=extension(0x11, b"x"))
    info = parse_module(image)
    assert info.crc_ok
    assert "the prefix extensions do not end with an END extension" in info.problems


def test_suffix_extensions_of_every_known_type_are_decoded() -> None:
    digest = hashlib.sha256(b"asset").digest()
    exts = (
        extension(0x02, le(0x1000, 4) + le(0x2000, 4) + le(0x3000, 4))
        + extension(0x10, bytes([0, 32]) + digest)
        + extension(0x12, bytes([0, 32]) + digest + b"cat.jpg")
        + extension(0x13, bytes([1]) + b"\xaa\xbb")
        + extension(0x14, bytes([2, 0]))
        + extension(0x7777, b"opaque")
        + extension(0x01, le(0x0042FFFF, 4) + le(3, 2))
    )
    # The product data extension ends where the raw product fields sit, so no raw ones.
    info = parse_module(module_image(function=5, suffix_extensions=exts))
    values = [(e.type_name, dict(e.values)) for e in info.extensions]
    assert values == [
        (
            "dynamic location",
            {
                "module_start_address": 0x1000,
                "dynalib_load_address": 0x2000,
                "dynalib_start_address": 0x3000,
            },
        ),
        ("hash", {"hash_type": 0, "hash": digest.hex()}),
        ("asset dependency", {"hash_type": 0, "hash": digest.hex(), "name": "cat.jpg"}),
        ("security mode", {"security_mode": 1, "certificate": "aabb"}),
        ("asset type", {"asset_type": 2}),
        ("unknown", {}),
        (
            "product data",
            {"product_id": 0x42, "product_id_raw": 0x0042FFFF, "product_version": 3},
        ),
    ]
    assert (info.product_id, info.product_version) == (0x42, 3)
    assert info.problems == () and info.sha_ok and info.crc_ok
    assert json.loads(json.dumps(info.to_json()))["extensions"][6]["product_id"] == 0x42


def test_tracker_asset_extensions_match_the_reference() -> None:
    info = parse_module(fixture_bytes("tracker-user-part-extensions.bin"))
    assets = [(e.values["name"], e.values["hash"]) for e in info.extensions if e.type == 0x12]
    assert [name for name, _ in assets] == ["btgap.a", "cat.jpg", "km4_image2_all.bin"]
    assert all(len(h) == 64 for _, h in assets)
    assert info.extensions[-1].type == 0


def test_a_malformed_suffix_extension_is_reported() -> None:
    bad = le(0x11, 2) + le(2, 2)  # a NAME extension claiming a 2-byte length
    info = parse_module(module_image(function=5, suffix_extensions=bad + bytes(8)))
    assert info.suffix_valid and info.sha_ok and info.crc_ok
    assert any("impossible length 2" in p for p in info.problems)


def test_a_short_known_extension_is_reported_and_kept() -> None:
    info = parse_module(module_image(function=5, suffix_extensions=extension(0x02, b"\1\2")))
    assert info.extensions[0].type == 2 and dict(info.extensions[0].values) == {}
    assert any("dynamic location extension" in p and "too short" in p for p in info.problems)


# --- the builder and the patcher ------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "suffix_size"),
    [
        (dict(), 36),
        (dict(platform_id=32, module_version=6, start_address=0x085FE000), 36),
        (dict(product_id=32, product_version=48879), 40),
        (dict(product_id=7), 40),
        (dict(product_version=7), 40),
        (dict(tlv_suffix=True), 62),
        (dict(tlv_suffix=True, product_id=32, product_version=3), 62),
        (dict(dependencies=()), 36),
        (dict(dependencies=[Dependency(4, 1, 5001), (2, 0, 1)]), 36),
    ],
)
@pytest.mark.parametrize("payload", [b"", b"\x01", b"stamp record" * 100])
def test_build_user_part_round_trips(
    kwargs: dict[str, Any], suffix_size: int, payload: bytes
) -> None:
    image = build_user_part(payload, **kwargs)
    info = parse_module(image)
    start = kwargs.get("start_address", 0x080A0000)
    assert (info.prefix_offset, info.module_function, info.module_index) == (0, 5, 1)
    assert info.start_address == start and info.end_address - start + 4 == len(image)
    assert info.platform_id == kwargs.get("platform_id", 6)
    assert info.module_version == kwargs.get("module_version", 6)
    assert info.suffix_size == suffix_size == len(image) - 24 - len(payload) - 4
    assert image[24 : 24 + len(payload)] == payload
    assert info.product_id == kwargs.get("product_id")
    assert info.product_version == kwargs.get("product_version")
    deps = kwargs.get("dependencies", ((4, 2, 1),))
    assert info.dependencies == tuple(
        d if isinstance(d, Dependency) else Dependency(*d) for d in deps
    )
    assert info.crc_ok and info.sha_ok and info.suffix_valid and info.problems == ()
    assert info.app_hash == hashlib.sha256(image[:-38]).hexdigest()


def test_build_user_part_tlv_form_matches_the_p2_layout() -> None:
    built = parse_module(
        build_user_part(b"app", product_id=32, product_version=48879, tlv_suffix=True)
    )
    real = parse_module(fixture_bytes("p2-user-part.bin"))
    assert [(e.type, e.length) for e in built.extensions] == [
        (e.type, e.length) for e in real.extensions
    ]
    assert (built.product_id, built.product_version) == (real.product_id, real.product_version)


def test_build_user_part_is_deterministic_and_payload_sensitive() -> None:
    assert build_user_part(b"a") == build_user_part(b"a")
    first, second = parse_module(build_user_part(b"a")), parse_module(build_user_part(b"b"))
    assert first.app_hash != second.app_hash


@pytest.mark.parametrize(
    "kwargs",
    [
        dict(platform_id=-1),
        dict(platform_id=1 << 16),
        dict(module_version=1 << 16),
        dict(start_address=1 << 32),
        dict(start_address=0xFFFFFFA0),
        dict(product_id=1 << 16),
        dict(product_version=-5),
        dict(dependencies=((4, 1, 1), (4, 2, 1), (4, 3, 1))),
        dict(dependencies=((0, 1, 0),)),
        dict(dependencies=((256, 0, 0),)),
        dict(dependencies=((4, 1, 70000),)),
    ],
)
def test_build_user_part_rejects_values_that_do_not_fit(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match=r"must|at most"):
        build_user_part(b"x" * 64, **kwargs)


def with_placeholders(image: bytes) -> bytes:
    return image[:-38] + bytes(range(1, 33)) + image[-6:-4] + bytes.fromhex("78563412")


@pytest.mark.parametrize(
    "image",
    [
        pytest.param(build_user_part(b"payload" * 30), id="built-36"),
        pytest.param(build_user_part(b"p", product_id=3, tlv_suffix=True), id="built-62"),
        pytest.param(module_image(prefix_offset=0x184, product=(5, 1)), id="gen2-system-part"),
        *(pytest.param(fixture_bytes(name), id=name) for name in FIXTURE_NAMES),
    ],
)
def test_patch_suffix_fills_in_the_elf_placeholders(image: bytes) -> None:
    unpatched = with_placeholders(image)
    info = parse_module(unpatched)
    assert info.sha_ok is False and info.crc_ok is False and info.stored_crc == "78563412"
    assert info.app_hash == bytes(range(1, 33)).hex()
    assert len(info.problems) == 1 and "placeholders" in info.problems[0]
    assert patch_suffix(unpatched) == image
    assert patch_suffix(image) == image


def test_patch_suffix_matches_the_placeholders_of_a_test_built_image() -> None:
    unpatched = module_image(function=5, placeholders=True)
    assert patch_suffix(unpatched) == module_image(function=5)


@pytest.mark.parametrize(
    ("image", "message"),
    [
        (module_image(prefix_offset=0x200, pad_to=4096), "padded past the module end"),
        (b"\x7fELF" + bytes(200), "not a Particle module"),
        (b"", "empty"),
    ],
)
def test_patch_suffix_refuses_what_it_cannot_patch(image: bytes, message: str) -> None:
    with pytest.raises(ModuleError, match=message):
        patch_suffix(image)


# --- reading from streams and files --------------------------------------------------------


def test_read_module_from_a_file_and_a_stream() -> None:
    with fixture_path("p2-user-part.bin").open("rb") as fp:
        from_file = read_module(fp)
    assert from_file == read_module(io.BytesIO(fixture_bytes("p2-user-part.bin")))
    assert from_file == parse_module(fixture_bytes("p2-user-part.bin"))


class FailingStream(io.RawIOBase):
    """A stream whose read fails like a disk or USB drive going away."""

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        raise OSError(5, "Input/output error")


def test_read_module_turns_an_os_error_into_a_module_error() -> None:
    with FailingStream() as stream, pytest.raises(ModuleError, match="Input/output error"):
        read_module(stream)


def test_read_module_refuses_a_huge_file(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(particle, "MAX_MODULE_FILE", 1024)
    with pytest.raises(ModuleError, match="too large"):
        read_module(io.BytesIO(fixture_bytes("040_user-part.bin")))


def test_module_error_is_an_artifact_error_with_one_sentence() -> None:
    with pytest.raises(ModuleError) as caught:
        parse_module(b"not a module at all, just some text\n" * 10)
    assert isinstance(caught.value, ArtifactError) and isinstance(caught.value, StampError)
    assert caught.value.exit_code == 2
    assert "\n" not in str(caught.value) and str(caught.value).count(". ") == 0


def test_is_module() -> None:
    for name in FIXTURE_NAMES:
        assert is_module(fixture_bytes(name))
    assert is_module(build_user_part(b""))
    assert is_module(module_image(prefix_offset=0x200, pad_to=8192))
    assert not is_module(b"")
    assert not is_module(b"\x7fELF\x01\x01\x01" + bytes(100))
    assert not is_module(fixture_bytes("040_user-part.bin")[:-1])


def test_module_info_is_frozen_and_names_its_platform() -> None:
    info = parse_module(fixture_bytes("p2-user-part.bin"))
    assert isinstance(info, ModuleInfo)
    with pytest.raises(dataclasses.FrozenInstanceError):
        info.crc_ok = False  # type: ignore[misc]
    assert info.platform_name == "P2/Photon 2" and info.module_function_name == "user part"
    assert hash(info.extensions[0]) == hash(info.extensions[0])
