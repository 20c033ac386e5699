"""Making Particle module binaries: a user part from a payload, and the suffix checksums.

`build_user_part` makes a complete, valid user-part module (tests, the demo and the
simulators need real ones without a Particle toolchain); `patch_suffix` fills in the
SHA-256 (app hash) and CRC32 that a Particle build patches into the .bin objcopy makes
from the ELF, which is how the app hash is known from the ELF alone.
"""

from __future__ import annotations

import hashlib
import struct
import zlib
from collections.abc import Iterable

from stamp.artifact.particle.extensions import EXT_DYNAMIC_LOCATION, EXT_PRODUCT_DATA
from stamp.artifact.particle.format import (
    CRC_SIZE,
    FUNCTION_NONE,
    FUNCTION_USER_PART,
    MIN_SUFFIX_SIZE,
    PREFIX_SIZE,
    PREFIX_STRUCT,
    SHA_FROM_END,
    U16,
    UNSET_U16,
    USER_PART_INDEX,
    ModuleError,
)
from stamp.artifact.particle.locate import locate_prefix, read_suffix_size
from stamp.artifact.particle.module import Dependency

_DYNAMIC_LOCATION_EXT = struct.Struct("<HHIII")
"""type, length, module start address, dynalib load address, dynalib RAM address."""
_PRODUCT_DATA_EXT = struct.Struct("<HHIH")
"""type, length, u32 id (product id in the upper half), u16 product version."""


def _check_range(name: str, value: int, bits: int) -> None:
    if not 0 <= value < 1 << bits:
        raise ValueError(f"{name} must fit in {bits} bits, got {value}")


def _finish(body: bytes, suffix_size: int) -> bytes:
    """`body` (everything before the SHA) + SHA-256 + suffix size + big-endian CRC32."""
    with_sha = body + hashlib.sha256(body).digest() + U16.pack(suffix_size)
    return with_sha + zlib.crc32(with_sha).to_bytes(CRC_SIZE, "big")


def build_user_part(
    payload: bytes,
    *,
    platform_id: int = 6,
    module_version: int = 6,
    start_address: int = 0x080A0000,
    dependencies: Iterable[Dependency | tuple[int, int, int]] = ((4, 2, 1),),
    product_id: int | None = None,
    product_version: int | None = None,
    tlv_suffix: bool = False,
) -> bytes:
    """A valid Particle user-part module (function 5, index 1) holding `payload`.

    The 24-byte prefix sits at offset 0 and its end address makes end - start + 4 the
    image's length. The suffix is 36 bytes, or 40 with product fields (an unset one is
    0xFFFF); with `tlv_suffix` it is the 62-byte form of P2 apps: a dynamic-location
    extension (module start; dynalib load and RAM address both start + 24, the payload)
    and a product-data extension whose tail is the product fields. The SHA-256 (app hash)
    and CRC32 are correct, so `parse_module` reads it back without problems.
    ValueError for a value that does not fit its field.

    Long because it lays out a whole module (prefix, body, suffix, extensions, checksums) in
    file order, as SPEC section 7 lists the fields.
    """
    deps = [d if isinstance(d, Dependency) else Dependency(*d) for d in dependencies]
    if len(deps) > 2:
        raise ValueError(f"a module prefix holds at most 2 dependencies, got {len(deps)}")
    for dep in deps:
        _check_range("a dependency's function", dep.function, 8)
        _check_range("a dependency's index", dep.index, 8)
        _check_range("a dependency's version", dep.version, 16)
        if dep.function == FUNCTION_NONE and (dep.index or dep.version):
            raise ValueError("an empty dependency (function 0) must have index and version 0")
    deps += [Dependency(0, 0, 0)] * (2 - len(deps))
    _check_range("platform_id", platform_id, 16)
    _check_range("module_version", module_version, 16)
    _check_range("start_address", start_address, 32)
    for name, value in (("product_id", product_id), ("product_version", product_version)):
        if value is not None:
            _check_range(name, value, 16)

    pid = UNSET_U16 if product_id is None else product_id
    pver = UNSET_U16 if product_version is None else product_version
    if tlv_suffix:
        payload_address = start_address + PREFIX_SIZE
        location = _DYNAMIC_LOCATION_EXT.pack(
            EXT_DYNAMIC_LOCATION,
            _DYNAMIC_LOCATION_EXT.size,
            start_address,
            payload_address,
            payload_address,
        )
        product_data = _PRODUCT_DATA_EXT.pack(
            EXT_PRODUCT_DATA, _PRODUCT_DATA_EXT.size, pid << 16 | UNSET_U16, pver
        )
        product = location + product_data
    elif product_id is not None or product_version is not None:
        product = struct.pack("<HH", pid, pver)
    else:
        product = b""
    suffix_size = MIN_SUFFIX_SIZE + len(product)
    total = PREFIX_SIZE + len(payload) + suffix_size + CRC_SIZE
    end_address = start_address + total - CRC_SIZE
    _check_range("the end address (start_address + image size)", end_address, 32)

    prefix = PREFIX_STRUCT.pack(
        start_address,
        end_address,
        0,
        0,
        module_version,
        platform_id,
        FUNCTION_USER_PART,
        USER_PART_INDEX,
        deps[0].function,
        deps[0].index,
        deps[0].version,
        deps[1].function,
        deps[1].index,
        deps[1].version,
    )
    return _finish(prefix + bytes(payload) + product + U16.pack(0), suffix_size)


def patch_suffix(image: bytes) -> bytes:
    """`image` with its suffix SHA-256 and CRC32 recomputed, as the Particle build does.

    The ELF holds placeholders there (SHA bytes 01 02 .. 20, CRC 78 56 34 12); objcopy
    copies them into the .bin, and this fills in the real values. Any module with a
    readable suffix can be patched (patching a correct image changes nothing); anything
    else is a ModuleError.
    """
    data = bytes(image)
    offset, _ = locate_prefix(data)
    start, end, _, flags = struct.unpack_from("<IIBB", data, offset)
    suffix_size, problem = read_suffix_size(data, offset, flags, end - start + CRC_SIZE)
    if suffix_size is None:
        raise ModuleError(f"cannot patch the module's suffix: {problem}")
    return _finish(data[:-SHA_FROM_END], suffix_size)
