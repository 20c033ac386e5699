"""The TLV extensions of a Particle module's prefix and suffix: their types and values.

A module with prefix flag 0x10 carries type-length-value extensions after its prefix,
and a suffix longer than 40 bytes carries some before its product fields (SPEC section
7). `read_extensions` walks one such area and `Extension` is what it finds, with the
fields of the types stamp knows decoded (product data, dynamic location, dependency,
hash, name, asset dependency, security mode, asset type).
"""

from __future__ import annotations

import struct
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

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

MAX_EXTENSIONS = 256
"""Stop reading TLV extensions after this many (garbage input could hold thousands)."""
_EXT_HEADER = struct.Struct("<HH")


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


def read_extensions(
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
