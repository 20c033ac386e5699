"""Particle module images for tests, built independently of stamp.artifact.particle.build.

`module_image` lays a module out byte by byte from SPEC section 7 (no struct formats or
constants shared with the parser), so a parser bug cannot hide behind the same bug in
the builder. It makes the layouts no fixture file covers: system parts and bootloaders
with a vector table before the prefix, padded images, prefix and suffix extensions.
"""

from __future__ import annotations

import hashlib
import zlib
from pathlib import Path

from tests.support import FIXTURES

PARTICLE_FIXTURES = FIXTURES / "particle"


def fixture_bytes(name: str) -> bytes:
    """The bytes of one real module binary in the shared fixtures."""
    return (PARTICLE_FIXTURES / name).read_bytes()


def fixture_path(name: str) -> Path:
    return PARTICLE_FIXTURES / name


def le(value: int, width: int) -> bytes:
    return value.to_bytes(width, "little")


def vector_table(size: int, start: int) -> bytes:
    """A Cortex-M vector table: initial SP in RAM, then Thumb handler addresses in flash."""
    words = [0x20020000] + [start + 0x300 + 8 * (i % 5) + 1 for i in range(size // 4 - 1)]
    return b"".join(le(w, 4) for w in words)[:size]


def extension(ext_type: int, body: bytes) -> bytes:
    """One TLV extension: u16 type, u16 length including the 4-byte header, body."""
    return le(ext_type, 2) + le(4 + len(body), 2) + body


def module_image(
    *,
    prefix_offset: int = 0,
    start: int = 0x08020000,
    flags: int = 0,
    version: int = 1,
    platform: int = 6,
    function: int = 4,
    index: int = 1,
    deps: tuple[tuple[int, int, int], ...] = (),
    body: bytes = bytes(range(256)) * 2,
    prefix_extensions: bytes = b"",
    suffix_extensions: bytes = b"",
    product: tuple[int, int] | None = None,
    pad_to: int | None = None,
    placeholders: bool = False,
) -> bytes:
    """A module image; `product` adds the raw u16 product fields (suffix size 40 or more)."""
    head = vector_table(prefix_offset, start)
    raw_product = b"" if product is None else le(product[0], 2) + le(product[1], 2)
    suffix_size = 36 + len(suffix_extensions) + len(raw_product)
    length = prefix_offset + 24 + len(prefix_extensions) + len(body) + suffix_size + 4
    dep_bytes = b"".join(le(f, 1) + le(i, 1) + le(v, 2) for f, i, v in deps)
    dep_bytes += bytes(8 - len(dep_bytes))
    prefix = (
        le(start, 4)
        + le(start + length - 4, 4)
        + b"\x00"
        + le(flags, 1)
        + le(version, 2)
        + le(platform, 2)
        + le(function, 1)
        + le(index, 1)
        + dep_bytes
    )
    data = head + prefix + prefix_extensions + body + suffix_extensions + raw_product + b"\0\0"
    if placeholders:
        data += bytes(range(1, 33)) + le(suffix_size, 2) + bytes.fromhex("78563412")
    else:
        data += hashlib.sha256(data).digest() + le(suffix_size, 2)
        data += zlib.crc32(data).to_bytes(4, "big")
    assert len(data) == length
    if pad_to is not None:
        data += b"\xff" * (pad_to - len(data))
    return data


# The keys SPEC section 7 fixes for the `particle` object of inspect and manifest JSON.
SPEC_PARTICLE_KEYS = {
    "app_hash", "sha_ok", "crc_ok", "stored_crc", "platform_id", "module_function",
    "module_index", "module_version", "start_address", "end_address", "prefix_offset",
    "flags", "suffix_size", "product_id", "product_version", "dependencies",
}  # fmt: skip
