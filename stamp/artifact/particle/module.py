"""Particle Device OS module binaries: find the prefix, read the suffix, check CRC and app hash.

`parse_module` (and `read_module` for a file, `is_module` for a cheap test) turns the
bytes of a module image into a `ModuleInfo`: what the prefix and suffix say, whether
the stored SHA-256 (the app hash) and CRC32 hold, and what is wrong, never raising for
damage it can describe. The format is `stamp.artifact.particle.format`, the prefix
search `stamp.artifact.particle.locate`, the TLV extensions
`stamp.artifact.particle.extensions`; `stamp.artifact.particle.build` makes modules.
"""

from __future__ import annotations

import hashlib
import struct
import zlib
from dataclasses import dataclass
from typing import Any, BinaryIO

from stamp.artifact.particle.extensions import Extension, read_extensions
from stamp.artifact.particle.format import (
    CRC_PLACEHOLDER,
    CRC_SIZE,
    FLAG_PREFIX_EXTENSIONS,
    MIN_SUFFIX_SIZE,
    MODULE_FUNCTION_NAMES,
    PLATFORM_NAMES,
    PREFIX_SIZE,
    PREFIX_STRUCT,
    PRODUCT_FROM_END,
    PRODUCT_SUFFIX_SIZE,
    RESERVED_FROM_END,
    SHA_FROM_END,
    SHA_PLACEHOLDER,
    SUFFIX_SIZE_FROM_END,
    UNSET_U16,
    ModuleError,
)
from stamp.artifact.particle.locate import (
    PERFECT_SCORE,
    locate_prefix,
    prefix_problems,
    read_suffix_size,
)

MAX_MODULE_FILE = 64 * 1024 * 1024
"""read_module refuses larger files: no Particle module is anywhere near this size."""


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


# --- parsing ------------------------------------------------------------------------------


def parse_module(data: bytes) -> ModuleInfo:
    """Read a Particle module binary; ModuleError if `data` is not a module at all.

    Damage that leaves the prefix recognisable is reported in the result (crc_ok, sha_ok,
    suffix_valid, problems), never raised, so `stamp inspect` can show what is wrong.

    Long because it reads SPEC section 7's prefix and suffix fields in order, each with its
    own consistency check; the table of fields is the function.
    """
    data = bytes(data)
    offset, score = locate_prefix(data)
    start, end, _, flags, version, platform, function, index, d1f, d1i, d1v, d2f, d2i, d2v = (
        PREFIX_STRUCT.unpack_from(data, offset)
    )
    size = len(data)
    module_size = end - start + CRC_SIZE
    problems = prefix_problems(data, offset) if score < PERFECT_SCORE else []
    dependencies = tuple(Dependency(f, i, v) for f, i, v in ((d1f, d1i, d1v), (d2f, d2i, d2v)) if f)

    view = memoryview(data)
    stored_crc = data[-CRC_SIZE:]
    computed_crc = zlib.crc32(view[: size - CRC_SIZE]).to_bytes(CRC_SIZE, "big")
    crc_ok = stored_crc == computed_crc

    prefix_end = offset + PREFIX_SIZE
    suffix_size, suffix_problem = read_suffix_size(data, offset, flags, module_size)
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
                "never patched (stamp.artifact.particle.build.patch_suffix does it)"
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
            suffix_extensions, _ = read_extensions(
                data, size - CRC_SIZE - suffix_size, size - RESERVED_FROM_END, "suffix", problems
            )

    prefix_extensions: list[Extension] = []
    if flags & FLAG_PREFIX_EXTENSIONS:
        stop = min(size, module_size) - CRC_SIZE - (suffix_size or MIN_SUFFIX_SIZE)
        prefix_extensions, ended = read_extensions(data, prefix_end, stop, "prefix", problems)
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
        locate_prefix(bytes(data))
    except ModuleError:
        return False
    return True
