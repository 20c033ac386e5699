"""Particle Device OS module binaries: find the prefix, read the suffix, check CRC and app hash.

A module image (SPEC section 7) is laid out like this, all fields little-endian except
the final CRC32:

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

The prefix is found the way Particle's own parser (binary-version-reader,
`HalModuleParser._findModulePrefixOffset`) finds it: every candidate offset is scored by
how consistent its prefix is with the file, the preferred offsets 0, 0x200, 0x184, 0xC0,
0x10C are tried first, then every 4-byte-aligned offset up to 8 KiB; the first candidate
that passes every check wins, else the best-scoring one. A padded file (a bootloader
filled with 0xFF up to its flash sector) never passes the exact-size check, so it is found
by the best score; it has no suffix at the end of the file, and none is invented for it.
Where no candidate passes every check, stamp is stricter than the reference, which takes
any 1-point match: a prefix that would pass if the file were longer means "truncated", and
an imperfect best match must still look like a real module (see `_plausible`), so a plain
Cortex-M .bin or a cut-off file is "not a module" rather than chance bytes read as one.
"""

from __future__ import annotations

import hashlib
import struct
import zlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, BinaryIO

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

PREFERRED_PREFIX_OFFSETS = (0, 0x200, 0x184, 0xC0, 0x10C)
"""User parts at 0; Gen3 and Gen2 vector tables; Bluz; Core (binary-version-reader order)."""
MAX_PREFIX_OFFSET = 8 * 1024
"""binary-version-reader considers a prefix beyond 8 KiB unreasonable."""
MAX_MODULE_FILE = 64 * 1024 * 1024
"""read_module refuses larger files: no Particle module is anywhere near this size."""
MAX_EXTENSIONS = 256
"""Stop reading TLV extensions after this many (garbage input could hold thousands)."""

FLAG_DROP_MODULE_INFO = 0x01
FLAG_COMPRESSED = 0x02
FLAG_COMBINED = 0x04
FLAG_ENCRYPTED = 0x08
FLAG_PREFIX_EXTENSIONS = 0x10
KNOWN_FLAGS = 0x1F

FUNCTION_NONE = 0
FUNCTION_USER_PART = 5
USER_PART_INDEX = 1

EXT_END = 0x0000
EXT_PRODUCT_DATA = 0x0001
EXT_DYNAMIC_LOCATION = 0x0002
EXT_DEPENDENCY = 0x0003
EXT_HASH = 0x0010
EXT_NAME = 0x0011
EXT_ASSET_DEPENDENCY = 0x0012
EXT_SECURITY_MODE = 0x0013
EXT_ASSET_TYPE = 0x0014
EXT_INVALID = 0xFFFF
"""Erased flash: binary-version-reader stops reading extensions here."""
EXT_HEADER_SIZE = 4

EXTENSION_NAMES: dict[int, str] = {
    EXT_END: "end",
    EXT_PRODUCT_DATA: "product data",
    EXT_DYNAMIC_LOCATION: "dynamic location",
    EXT_DEPENDENCY: "dependency",
    EXT_HASH: "hash",
    EXT_NAME: "name",
    EXT_ASSET_DEPENDENCY: "asset dependency",
    EXT_SECURITY_MODE: "security mode",
    EXT_ASSET_TYPE: "asset type",
}

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

_DEPENDENCY_FUNCTIONS = frozenset({FUNCTION_NONE, *MODULE_FUNCTION_NAMES})
_PREFIX = struct.Struct("<IIBBHHBBBBHBBH")
_U16 = struct.Struct("<H")
_EXT_HEADER = struct.Struct("<HH")
_DYNAMIC_LOCATION_EXT = struct.Struct("<HHIII")
"""type, length, module start address, dynalib load address, dynalib RAM address."""
_PRODUCT_DATA_EXT = struct.Struct("<HHIH")
"""type, length, u32 id (product id in the upper half), u16 product version."""
_PERFECT_SCORE = 7
"""A prefix passing every check of `_score_prefix`."""
_MIN_SCORE = 5
"""An imperfect prefix needs this score, and more evidence, to count (see _plausible)."""
MIN_PADDING = 4
"""Fewer uniform bytes after a module's end are no evidence of padding."""
PADDING_BYTES = (0xFF, 0x00)
"""What a padded image is filled with after its module end (erased flash, or zeros)."""
_MAX_TRUNCATED_SIZE = 16 * 1024 * 1024
"""A prefix claiming more than this is not taken as evidence of a truncated module."""


class ModuleError(ArtifactError):
    """A file is not a Particle module binary, or is too damaged to read as one."""


@dataclass(frozen=True)
class Dependency:
    """One module this module needs, from the prefix (or a dependency extension)."""

    function: int
    """Module function of the dependency (4 = system part, ...)."""
    index: int
    """Module index of the dependency (e.g. system part 2)."""
    version: int
    """Minimum module version of the dependency."""

    def to_json(self) -> dict[str, int]:
        """The `{function, index, version}` object of `stamp inspect --json`."""
        return {"function": self.function, "index": self.index, "version": self.version}


@dataclass(frozen=True)
class Extension:
    """One TLV extension of the module prefix or suffix."""

    type: int
    """Extension type (the EXT_* constants; 0 ends a list)."""
    length: int
    """Length in bytes, including the 4-byte type/length header."""
    offset: int
    """File offset of the extension's header."""
    where: str
    """"prefix" or "suffix"."""
    values: Mapping[str, int | str] = field(default_factory=dict, hash=False)
    """Decoded fields for known types (product_id, name, hash, ...); empty otherwise."""

    @property
    def type_name(self) -> str:
        """A readable name of the type ("product data"), or "unknown"."""
        return EXTENSION_NAMES.get(self.type, "unknown")

    def to_json(self) -> dict[str, Any]:
        """Type, type_name, length, offset, where, then the decoded values."""
        head: dict[str, Any] = {
            "type": self.type,
            "type_name": self.type_name,
            "length": self.length,
            "offset": self.offset,
            "where": self.where,
        }
        return {**head, **self.values}


@dataclass(frozen=True)
class ModuleInfo:
    """What a Particle module binary says about itself, and whether its checksums hold."""

    prefix_offset: int
    """File offset of the module prefix (0 for user parts, 0x200 Gen3, 0x184 Gen2, ...)."""
    start_address: int
    """`module_start_address`: where the module's first byte goes in flash."""
    end_address: int
    """`module_end_address`: the module is end - start + 4 bytes long (with its CRC)."""
    flags: int
    """Prefix flags (0x01 drop info, 0x02 compressed, 0x04 combined, 0x08 encrypted, 0x10 ext)."""
    module_version: int
    """`module_version` from the prefix."""
    platform_id: int
    """Device OS platform id (6 Photon, 32 P2, ...; see PLATFORM_NAMES)."""
    module_function: int
    """Module function (5 user part, 4 system part, 2 bootloader, ...)."""
    module_index: int
    """Module index (system part number, user part slot)."""
    dependencies: tuple[Dependency, ...]
    """The prefix's non-empty dependencies, in order."""
    suffix_size: int | None
    """Suffix size field; None when the file has no readable suffix at its end."""
    product_id: int | None
    """Product id from the suffix; None when absent or unset (0xFFFF)."""
    product_version: int | None
    """Product version from the suffix; None when absent or unset (0xFFFF)."""
    app_hash: str | None
    """The SHA-256 stored in the suffix (64 lowercase hex); None without a suffix."""
    sha_ok: bool | None
    """The stored SHA-256 matches the content; None without a suffix."""
    crc_ok: bool
    """The CRC32 in the last 4 bytes matches the rest of the file."""
    stored_crc: str
    """The last 4 bytes of the file, 8 lowercase hex (big-endian CRC32)."""
    computed_crc: str
    """CRC32 of all but the last 4 bytes, 8 lowercase hex."""
    computed_sha256: str | None
    """SHA-256 of [0, len - 38), 64 lowercase hex; None without a suffix."""
    extensions: tuple[Extension, ...]
    """TLV extensions of the prefix (flag 0x10) and of the suffix, in file order."""
    suffix_valid: bool
    """The file ends with a readable suffix (its size field fits the file and the prefix)."""
    problems: tuple[str, ...]
    """What is wrong or unusual, one sentence each; empty for a clean module."""
    module_size: int = 0
    """end - start + 4: the module's length according to its prefix."""

    @property
    def platform_name(self) -> str | None:
        """The platform's name ("Photon"), or None for an id stamp does not know."""
        return PLATFORM_NAMES.get(self.platform_id)

    @property
    def module_function_name(self) -> str | None:
        """The module function's name ("user part"), or None when unknown."""
        return MODULE_FUNCTION_NAMES.get(self.module_function)

    def to_json(self) -> dict[str, Any]:
        """The `particle` object of `stamp inspect --json` (SPEC section 7), plus extras."""
        return {
            "app_hash": self.app_hash,
            "sha_ok": self.sha_ok,
            "crc_ok": self.crc_ok,
            "stored_crc": self.stored_crc,
            "platform_id": self.platform_id,
            "module_function": self.module_function,
            "module_index": self.module_index,
            "module_version": self.module_version,
            "start_address": self.start_address,
            "end_address": self.end_address,
            "prefix_offset": self.prefix_offset,
            "flags": self.flags,
            "suffix_size": self.suffix_size,
            "product_id": self.product_id,
            "product_version": self.product_version,
            "dependencies": [dep.to_json() for dep in self.dependencies],
            "platform_name": self.platform_name,
            "module_function_name": self.module_function_name,
            "module_size": self.module_size,
            "computed_crc": self.computed_crc,
            "computed_sha256": self.computed_sha256,
            "suffix_valid": self.suffix_valid,
            "extensions": [ext.to_json() for ext in self.extensions],
            "problems": list(self.problems),
        }


# --- finding the prefix -------------------------------------------------------------------


def _score_prefix(data: bytes, offset: int, length: int | None = None) -> int:
    """How consistent the prefix at `offset` is with a file of `length` bytes: 0 .. 7.

    `length` defaults to the real length; a larger one asks "would this prefix match if
    the file were not cut short?". The checks are binary-version-reader's
    `_validateModulePrefix`: a prefix must have start < end, fit the file
    (end - start + 4 <= length), a module function, and all-zero empty dependencies;
    each of known platform, known function, known dependency functions, exact file size
    and known flags then adds one point.
    """
    if offset + PREFIX_SIZE > len(data):
        return 0
    length = len(data) if length is None else length
    start, end, _, flags, _, platform, function, _, d1f, d1i, d1v, d2f, d2i, d2v = (
        _PREFIX.unpack_from(data, offset)
    )
    if end <= start or end - start + CRC_SIZE > length or function == FUNCTION_NONE:
        return 0
    if (d1f == FUNCTION_NONE and (d1i or d1v)) or (d2f == FUNCTION_NONE and (d2i or d2v)):
        return 0
    return int(
        1
        + (platform in PLATFORM_NAMES)
        + (function in MODULE_FUNCTION_NAMES)
        + (d1f in _DEPENDENCY_FUNCTIONS)
        + (d2f in _DEPENDENCY_FUNCTIONS)
        + (end - start + CRC_SIZE == length)
        + (flags & ~KNOWN_FLAGS == 0)
    )


def _candidate_offsets(size: int) -> Iterable[int]:
    """The preferred offsets, then every other 4-byte-aligned one up to 8 KiB.

    The scan stops where a prefix would leave no room for a minimal suffix, as in
    binary-version-reader; each offset is scored in constant time, so a 1 MB file costs
    at most ~2 000 small struct reads.
    """
    yield from PREFERRED_PREFIX_OFFSETS
    last = min(MAX_PREFIX_OFFSET, size - MIN_SUFFIX_SIZE - PREFIX_SIZE - CRC_SIZE)
    for offset in range(4, last + 1, 4):
        if offset not in PREFERRED_PREFIX_OFFSETS:
            yield offset


def _truncated_size(data: bytes, offset: int) -> int | None:
    """The size a prefix at `offset` claims when it would be perfect but the file is shorter."""
    if offset + PREFIX_SIZE > len(data):
        return None
    start, end = struct.unpack_from("<II", data, offset)
    claimed = end - start + CRC_SIZE
    if not len(data) < claimed <= _MAX_TRUNCATED_SIZE:
        return None
    return claimed if _score_prefix(data, offset, claimed) == _PERFECT_SCORE else None


def _module_checksum_holds(data: bytes, module_size: int) -> bool:
    """Whether the CRC32 or the SHA-256 at the end of [0, module_size) matches its content."""
    view = memoryview(data)
    crc = zlib.crc32(view[: module_size - CRC_SIZE]).to_bytes(CRC_SIZE, "big")
    if data[module_size - CRC_SIZE : module_size] == crc:
        return True
    sha = hashlib.sha256(view[: module_size - SHA_FROM_END]).digest()
    return data[module_size - SHA_FROM_END : module_size - SUFFIX_SIZE_FROM_END] == sha


def _plausible(data: bytes, offset: int, score: int) -> bool:
    """Whether an imperfect best prefix is a real module rather than bytes that look like one.

    binary-version-reader settles for any 1-point match, but scattered pointers and zeros
    score 4 or 5 in most non-module files (and in most real modules shifted by a few
    bytes), and now and then even match the file's size. So unless a prefix matches the
    file's size and misses a single check (a platform newer than this table, say), it
    must be borne out by the module it describes: its CRC32 or SHA-256 holds, or
    everything after it is padding (erased flash or zeros).
    """
    start, end = struct.unpack_from("<II", data, offset)
    module_size = end - start + CRC_SIZE
    if score < _MIN_SCORE or module_size < offset + PREFIX_SIZE + MIN_SUFFIX_SIZE + CRC_SIZE:
        return False
    if module_size == len(data) and score == _PERFECT_SCORE - 1:
        return True  # one unknown field (a new platform, say) in an otherwise exact prefix
    if _module_checksum_holds(data, module_size):
        return True
    tail = data[module_size:]
    return len(tail) >= MIN_PADDING and any(tail == bytes([b]) * len(tail) for b in PADDING_BYTES)


def _locate_prefix(data: bytes) -> tuple[int, int]:
    """(offset, score) of the module prefix; ModuleError when the file is not a module."""
    if not data:
        raise ModuleError("the file is empty, so it is not a Particle module binary")
    best_offset, best_score = 0, 0
    for offset in _candidate_offsets(len(data)):
        score = _score_prefix(data, offset)
        if score == _PERFECT_SCORE:
            return offset, score
        if score > best_score:
            best_offset, best_score = offset, score
    # No prefix matches the file exactly. A half-written or cut-off download shows up as
    # an otherwise perfect prefix claiming more bytes than the file has: say so, rather
    # than reporting whatever scattered bytes happen to look like a prefix.
    for offset in PREFERRED_PREFIX_OFFSETS:
        claimed = _truncated_size(data, offset)
        if claimed is not None:
            raise ModuleError(
                f"the module is truncated: its prefix at offset {offset} says it is "
                f"{claimed} bytes long but the file has only {len(data)}; "
                "rebuild or download it again"
            )
    if best_score == 0 or not _plausible(data, best_offset, best_score):
        raise ModuleError(
            "no Particle module prefix found at offset 0, the vector-table offsets or any "
            "4-byte offset below 8 KiB, so this is not a Particle module binary"
        )
    return best_offset, best_score


# --- extensions ---------------------------------------------------------------------------


def _decode_extension(body: bytes, ext_type: int) -> dict[str, int | str] | None:
    """The known fields of one extension's body (after its header); None if too short."""
    n = len(body)
    if ext_type == EXT_PRODUCT_DATA:
        if n < 6:
            return None
        raw_id, version = struct.unpack_from("<IH", body)
        # Device OS writes the id as 0xFFFF in the low half and the product id in the
        # high half, so the high half lands where the legacy u16 product_id sits.
        return {"product_id": raw_id >> 16, "product_id_raw": raw_id, "product_version": version}
    if ext_type == EXT_DYNAMIC_LOCATION:
        if n < 12:
            return None
        start, load, ram = struct.unpack_from("<III", body)
        return {
            "module_start_address": start,
            "dynalib_load_address": load,
            "dynalib_start_address": ram,
        }
    if ext_type == EXT_DEPENDENCY:
        if n < 8:
            return None
        function, index, version, target = struct.unpack_from("<BBHI", body)
        return {
            "module_function": function,
            "module_index": index,
            "module_version": version,
            "target_id": target,
        }
    if ext_type in (EXT_HASH, EXT_ASSET_DEPENDENCY):
        if n < 2 or 2 + body[1] > n:
            return None
        hash_type, hash_len = body[0], body[1]
        values: dict[str, int | str] = {
            "hash_type": hash_type,
            "hash": body[2 : 2 + hash_len].hex(),
        }
        if ext_type == EXT_ASSET_DEPENDENCY:
            values["name"] = body[2 + hash_len :].decode("utf-8", errors="replace")
        return values
    if ext_type == EXT_NAME:
        return {"name": body.decode("utf-8", errors="replace")}
    if ext_type == EXT_SECURITY_MODE:
        if n < 1:
            return None
        security: dict[str, int | str] = {"security_mode": body[0]}
        if n > 1:
            security["certificate"] = body[1:].hex()
        return security
    if ext_type == EXT_ASSET_TYPE:
        return None if n < 1 else {"asset_type": body[0]}
    return {}


def _read_extensions(
    data: bytes, start: int, stop: int, where: str, problems: list[str]
) -> tuple[list[Extension], bool]:
    """The TLV extensions in [start, stop), and whether an END extension closed them."""
    found: list[Extension] = []
    offset = start
    while offset < stop:
        if len(found) == MAX_EXTENSIONS:
            problems.append(f"the {where} holds more than {MAX_EXTENSIONS} extensions")
            return found, False
        if offset + EXT_HEADER_SIZE > stop:
            problems.append(f"the {where} extension at offset {offset} is cut short")
            return found, False
        ext_type, length = _EXT_HEADER.unpack_from(data, offset)
        if ext_type == EXT_INVALID:
            return found, False
        if length < EXT_HEADER_SIZE or offset + length > stop:
            problems.append(
                f"the {where} extension at offset {offset} has an impossible length {length}"
            )
            return found, False
        body = data[offset + EXT_HEADER_SIZE : offset + length]
        values = _decode_extension(body, ext_type)
        if values is None:
            name = EXTENSION_NAMES.get(ext_type, "unknown")
            problems.append(
                f"the {where} {name} extension at offset {offset} is too short ({length} bytes)"
            )
            values = {}
        found.append(Extension(ext_type, length, offset, where, MappingProxyType(values)))
        if ext_type == EXT_END:
            return found, True
        offset += length
    return found, False


# --- parsing ------------------------------------------------------------------------------


def _prefix_problems(data: bytes, offset: int) -> list[str]:
    """Why the prefix at `offset` scored less than perfect (the size is reported elsewhere)."""
    _, _, _, flags, _, platform, function, _, d1f, _, _, d2f, _, _ = _PREFIX.unpack_from(
        data, offset
    )
    problems = []
    if platform not in PLATFORM_NAMES:
        problems.append(f"platform id {platform} is not one stamp knows")
    if function not in MODULE_FUNCTION_NAMES:
        problems.append(f"module function {function} is not a known one")
    for number, dep_function in ((1, d1f), (2, d2f)):
        if dep_function not in _DEPENDENCY_FUNCTIONS:
            problems.append(f"dependency {number} has an unknown module function {dep_function}")
    if flags & ~KNOWN_FLAGS:
        problems.append(f"the prefix flags 0x{flags:02x} include unknown bits")
    return problems


def _suffix_size(
    data: bytes, offset: int, flags: int, module_size: int
) -> tuple[int | None, str | None]:
    """The suffix size when the file ends with a readable suffix, else why it does not."""
    size = len(data)
    if module_size != size:
        # The prefix's size fits the file (else it would not have been found) but the file
        # is longer: padding, or more modules after this one. The last bytes of the file
        # are then not this module's suffix, so nothing is read from them.
        if flags & FLAG_COMBINED:
            what = "holds more than this module (a combined image)"
        else:
            what = "is padded past the module end"
        return None, f"the file ({size} bytes) {what} ({module_size} bytes): no suffix at its end"
    (suffix_size,) = _U16.unpack_from(data, size - SUFFIX_SIZE_FROM_END)
    if suffix_size < MIN_SUFFIX_SIZE or size - CRC_SIZE - suffix_size < offset + PREFIX_SIZE:
        return None, f"the suffix size {suffix_size} does not fit this {size}-byte module"
    return suffix_size, None


def parse_module(data: bytes) -> ModuleInfo:
    """Read a Particle module binary; ModuleError if `data` is not a module at all.

    Damage that leaves the prefix recognisable is reported in the result (crc_ok, sha_ok,
    suffix_valid, problems), never raised, so `stamp inspect` can show what is wrong.
    """
    data = bytes(data)
    offset, score = _locate_prefix(data)
    start, end, _, flags, version, platform, function, index, d1f, d1i, d1v, d2f, d2i, d2v = (
        _PREFIX.unpack_from(data, offset)
    )
    size = len(data)
    module_size = end - start + CRC_SIZE
    problems = _prefix_problems(data, offset) if score < _PERFECT_SCORE else []
    dependencies = tuple(Dependency(f, i, v) for f, i, v in ((d1f, d1i, d1v), (d2f, d2i, d2v)) if f)

    view = memoryview(data)
    stored_crc = data[-CRC_SIZE:]
    computed_crc = zlib.crc32(view[: size - CRC_SIZE]).to_bytes(CRC_SIZE, "big")
    crc_ok = stored_crc == computed_crc

    prefix_end = offset + PREFIX_SIZE
    suffix_size, suffix_problem = _suffix_size(data, offset, flags, module_size)
    if suffix_problem:
        problems.append(suffix_problem)

    app_hash = computed_sha = None
    sha_ok: bool | None = None
    product_id = product_version = None
    suffix_extensions: list[Extension] = []
    if suffix_size is not None:
        stored_sha = data[size - SHA_FROM_END : size - SUFFIX_SIZE_FROM_END]
        app_hash = stored_sha.hex()
        computed_sha = hashlib.sha256(view[: size - SHA_FROM_END]).hexdigest()
        sha_ok = app_hash == computed_sha
        if stored_sha == SHA_PLACEHOLDER and stored_crc == CRC_PLACEHOLDER:
            problems.append(
                "the suffix still holds the ELF's SHA-256 and CRC placeholders: the .bin was "
                "never patched (stamp.artifact.particle.patch_suffix does it)"
            )
        else:
            if not sha_ok:
                problems.append("the stored SHA-256 (app hash) does not match the content")
            if not crc_ok:
                problems.append(
                    f"the stored CRC32 {stored_crc.hex()} does not match the content "
                    f"({computed_crc.hex()})"
                )
        if suffix_size >= PRODUCT_SUFFIX_SIZE:
            raw_id, raw_version = struct.unpack_from("<HH", data, size - PRODUCT_FROM_END)
            product_id = None if raw_id == UNSET_U16 else raw_id
            product_version = None if raw_version == UNSET_U16 else raw_version
        elif suffix_size != MIN_SUFFIX_SIZE:
            problems.append(f"the suffix size {suffix_size} is between the known 36 and 40")
        if suffix_size > PRODUCT_SUFFIX_SIZE:
            suffix_extensions, _ = _read_extensions(
                data, size - CRC_SIZE - suffix_size, size - RESERVED_FROM_END, "suffix", problems
            )

    prefix_extensions: list[Extension] = []
    if flags & FLAG_PREFIX_EXTENSIONS:
        stop = min(size, module_size) - CRC_SIZE - (suffix_size or MIN_SUFFIX_SIZE)
        prefix_extensions, ended = _read_extensions(data, prefix_end, stop, "prefix", problems)
        if not ended:
            problems.append("the prefix extensions do not end with an END extension")

    return ModuleInfo(
        prefix_offset=offset,
        start_address=start,
        end_address=end,
        flags=flags,
        module_version=version,
        platform_id=platform,
        module_function=function,
        module_index=index,
        dependencies=dependencies,
        suffix_size=suffix_size,
        product_id=product_id,
        product_version=product_version,
        app_hash=app_hash,
        sha_ok=sha_ok,
        crc_ok=crc_ok,
        stored_crc=stored_crc.hex(),
        computed_crc=computed_crc.hex(),
        computed_sha256=computed_sha,
        extensions=(*prefix_extensions, *suffix_extensions),
        suffix_valid=suffix_size is not None,
        problems=tuple(problems),
        module_size=module_size,
    )


def read_module(fp: BinaryIO) -> ModuleInfo:
    """parse_module of everything `fp` holds (at most MAX_MODULE_FILE bytes)."""
    try:
        data = fp.read(MAX_MODULE_FILE + 1)
    except OSError as exc:
        raise ModuleError(
            f"cannot read the module binary: {exc.strerror or exc}", detail=repr(exc)
        ) from exc
    if len(data) > MAX_MODULE_FILE:
        raise ModuleError(
            f"the file is larger than {MAX_MODULE_FILE // (1024 * 1024)} MiB, "
            "far too large to be a Particle module binary"
        )
    return parse_module(data)


def is_module(data: bytes) -> bool:
    """True when parse_module would read `data` as a module (cheap: no hashing)."""
    try:
        _locate_prefix(bytes(data))
    except ModuleError:
        return False
    return True


# --- building -----------------------------------------------------------------------------


def _check_range(name: str, value: int, bits: int) -> None:
    if not 0 <= value < 1 << bits:
        raise ValueError(f"{name} must fit in {bits} bits, got {value}")


def _finish(body: bytes, suffix_size: int) -> bytes:
    """`body` (everything before the SHA) + SHA-256 + suffix size + big-endian CRC32."""
    with_sha = body + hashlib.sha256(body).digest() + _U16.pack(suffix_size)
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

    prefix = _PREFIX.pack(
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
    return _finish(prefix + bytes(payload) + product + _U16.pack(0), suffix_size)


def patch_suffix(image: bytes) -> bytes:
    """`image` with its suffix SHA-256 and CRC32 recomputed, as the Particle build does.

    The ELF holds placeholders there (SHA bytes 01 02 .. 20, CRC 78 56 34 12); objcopy
    copies them into the .bin, and this fills in the real values. Any module with a
    readable suffix can be patched (patching a correct image changes nothing); anything
    else is a ModuleError.
    """
    data = bytes(image)
    offset, _ = _locate_prefix(data)
    start, end, _, flags = struct.unpack_from("<IIBB", data, offset)
    suffix_size, problem = _suffix_size(data, offset, flags, end - start + CRC_SIZE)
    if suffix_size is None:
        raise ModuleError(f"cannot patch the module's suffix: {problem}")
    return _finish(data[:-SHA_FROM_END], suffix_size)
