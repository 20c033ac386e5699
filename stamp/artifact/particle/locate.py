"""Finding where a Particle module's prefix is, and whether the file ends with its suffix.

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
from collections.abc import Iterable

from stamp.artifact.particle.format import (
    CRC_SIZE,
    FLAG_COMBINED,
    FUNCTION_NONE,
    KNOWN_FLAGS,
    MIN_SUFFIX_SIZE,
    MODULE_FUNCTION_NAMES,
    PLATFORM_NAMES,
    PREFIX_SIZE,
    PREFIX_STRUCT,
    SHA_FROM_END,
    SUFFIX_SIZE_FROM_END,
    U16,
    ModuleError,
    ModuleTruncated,
)

PREFERRED_PREFIX_OFFSETS = (0, 0x200, 0x184, 0xC0, 0x10C)
"""User parts at 0; Gen3 and Gen2 vector tables; Bluz; Core (binary-version-reader order)."""
MAX_PREFIX_OFFSET = 8 * 1024
"""binary-version-reader considers a prefix beyond 8 KiB unreasonable."""

_DEPENDENCY_FUNCTIONS = frozenset({FUNCTION_NONE, *MODULE_FUNCTION_NAMES})
PERFECT_SCORE = 7
"""A prefix passing every check of `_score_prefix`."""
_MIN_SCORE = 5
"""An imperfect prefix needs this score, and more evidence, to count (see _plausible)."""
MIN_PADDING = 4
"""Fewer uniform bytes after a module's end are no evidence of padding."""
PADDING_BYTES = (0xFF, 0x00)
"""What a padded image is filled with after its module end (erased flash, or zeros)."""
_MAX_TRUNCATED_SIZE = 16 * 1024 * 1024
"""A prefix claiming more than this is not taken as evidence of a truncated module."""


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
        PREFIX_STRUCT.unpack_from(data, offset)
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


def _claims_whole_file(data: bytes, offset: int) -> bool:
    start, end = struct.unpack_from("<II", data, offset)
    return bool(end - start + CRC_SIZE == len(data))


def _truncated_size(data: bytes, offset: int) -> int | None:
    """The size a prefix at `offset` claims when it would be perfect but the file is shorter."""
    if offset + PREFIX_SIZE > len(data):
        return None
    start, end = struct.unpack_from("<II", data, offset)
    claimed = end - start + CRC_SIZE
    if not len(data) < claimed <= _MAX_TRUNCATED_SIZE:
        return None
    return claimed if _score_prefix(data, offset, claimed) == PERFECT_SCORE else None


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
    if module_size == len(data) and score == PERFECT_SCORE - 1:
        return True  # one unknown field (a new platform, say) in an otherwise exact prefix
    if _module_checksum_holds(data, module_size):
        return True
    tail = data[module_size:]
    return len(tail) >= MIN_PADDING and any(tail == bytes([b]) * len(tail) for b in PADDING_BYTES)


def locate_prefix(data: bytes) -> tuple[int, int]:
    """(offset, score) of the module prefix; ModuleError when the file is not a module."""
    if not data:
        raise ModuleError("the file is empty, so it is not a Particle module binary")
    best_offset, best_score = 0, 0
    whole_checksum: bool | None = None
    for offset in _candidate_offsets(len(data)):
        score = _score_prefix(data, offset)
        if score == PERFECT_SCORE:
            return offset, score
        if score and _claims_whole_file(data, offset):
            # Consistent with the file above all (SPEC section 7) and borne out by its
            # CRC or SHA-256: a module whatever codes it carries (a platform or module
            # function newer than stamp, say), even if an earlier offset scores higher.
            if whole_checksum is None:
                whole_checksum = _module_checksum_holds(data, len(data))
            if whole_checksum:
                return offset, score
        if score > best_score:
            best_offset, best_score = offset, score
    # No prefix matches the file exactly. A half-written or cut-off download shows up as
    # an otherwise perfect prefix claiming more bytes than the file has: say so, rather
    # than reporting whatever scattered bytes happen to look like a prefix.
    for offset in PREFERRED_PREFIX_OFFSETS:
        claimed = _truncated_size(data, offset)
        if claimed is not None:
            raise ModuleTruncated(
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


def prefix_problems(data: bytes, offset: int) -> list[str]:
    """Why the prefix at `offset` scored less than perfect (the size is reported elsewhere).

    A platform id or module function stamp does not know is no problem: Particle adds
    platforms, and the file is reported with the number (issue 10).
    """
    flags = PREFIX_STRUCT.unpack_from(data, offset)[3]
    problems = []
    if flags & ~KNOWN_FLAGS:
        problems.append(f"the prefix flags 0x{flags:02x} include unknown bits")
    return problems


def read_suffix_size(
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
    (suffix_size,) = U16.unpack_from(data, size - SUFFIX_SIZE_FROM_END)
    if suffix_size < MIN_SUFFIX_SIZE or size - CRC_SIZE - suffix_size < offset + PREFIX_SIZE:
        return None, f"the suffix size {suffix_size} does not fit this {size}-byte module"
    return suffix_size, None
