"""The format of a Particle Device OS module binary: where each field sits, and its names.

The sizes, offsets, flags and module functions that finding, parsing and building a
module share (`stamp.artifact.particle.locate`, `.particle`, `.particle_build`) live
here, with the names of the platforms and module functions stamp knows and
`ModuleError`, the error for a file that is not a module. A module image (SPEC section
7) is laid out like this, all fields little-endian except the final CRC32:

    offset 0 .. prefix_offset     vector table (system parts, bootloaders, Core images)
    prefix_offset                 module_info_t, 24 bytes: start and end address, flags,
                                  version, platform, function, index, two dependencies;
                                  with flag 0x10, TLV extensions follow up to an END one
    ...                           code and data
    len - 4 - suffix_size         TLV extensions (only when suffix_size > 40)
    len - 44                      u16 product id, u16 product version (suffix_size >= 40)
    len - 40                      u16 reserved
    len - 38                      SHA-256 over [0, len - 38): the app hash
    len - 6                       u16 suffix_size (36, 40, 62, 190, ...)
    len - 4                       CRC32 over [0, len - 4), big-endian
"""

from __future__ import annotations

import struct

from stamp.errors import ArtifactError

PREFIX_SIZE = 24
"""Size of `module_info_t`, the module prefix."""
MIN_SUFFIX_SIZE = 36
"""Size of `module_info_suffix_t` without product fields: reserved, SHA-256, size."""
PRODUCT_SUFFIX_SIZE = 40
"""Suffix size with the u16 product id and product version."""
CRC_SIZE = 4
SHA_SIZE = 32
SHA_FROM_END = 38
"""The SHA-256 sits at [len - 38, len - 6): after it come the u16 size and the CRC."""
SUFFIX_SIZE_FROM_END = 6
PRODUCT_FROM_END = 44
RESERVED_FROM_END = 40
UNSET_U16 = 0xFFFF
"""Product id/version value meaning "not a product build"."""

FLAG_DROP_MODULE_INFO = 0x01
FLAG_COMPRESSED = 0x02
FLAG_COMBINED = 0x04
FLAG_ENCRYPTED = 0x08
FLAG_PREFIX_EXTENSIONS = 0x10
KNOWN_FLAGS = 0x1F

FUNCTION_NONE = 0
FUNCTION_USER_PART = 5
USER_PART_INDEX = 1

SHA_PLACEHOLDER = bytes(range(1, SHA_SIZE + 1))
"""What the ELF of a Particle app holds where the suffix SHA-256 goes."""
CRC_PLACEHOLDER = bytes.fromhex("78563412")
"""What the ELF of a Particle app holds where the CRC32 goes."""

PLATFORM_NAMES: dict[int, str] = {
    0: "Core",
    6: "Photon",
    8: "P1",
    10: "Electron",
    12: "Argon",
    13: "Boron",
    14: "Xenon",
    # E SoM X: a Gen3 platform in Device OS's release scripts (build/release.sh).
    15: "E SoM X",
    22: "A SoM",
    23: "B SoM",
    25: "B5 SoM",
    26: "Tracker",
    28: "Tracker M",
    32: "P2/Photon 2",
    35: "M SoM",
}

MODULE_FUNCTION_NAMES: dict[int, str] = {
    1: "resource",
    2: "bootloader",
    3: "monolithic",
    4: "system part",
    5: "user part",
    6: "settings",
    7: "NCP",
    8: "radio stack",
    9: "asset",
}

PREFIX_STRUCT = struct.Struct("<IIBBHHBBBBHBBH")
"""`module_info_t`: start and end address, reserved, flags, module version, platform,
function, index, then (function, index, version) of two dependencies."""
U16 = struct.Struct("<H")


class ModuleError(ArtifactError):
    """A file is not a Particle module binary, or is too damaged to read as one."""


class ModuleTruncated(ModuleError):
    """A module prefix that would fit if the file were longer: a cut-off download."""
