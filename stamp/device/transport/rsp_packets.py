"""The GDB remote protocol's packet codec: framing, escapes, run lengths, memory maps.

Pure functions over bytes, as the protocol's manual defines them
(https://sourceware.org/gdb/current/onlinedocs/gdb.html/Overview.html); the connection
that uses them is `stamp.device.transport.rsp`.
"""

from __future__ import annotations

from dataclasses import dataclass

_ESCAPED = frozenset(b"#$}*")


@dataclass(frozen=True)
class FlashBlock:
    """One flash region of the server's memory map."""

    start: int
    """First address."""
    length: int
    """Bytes."""
    blocksize: int
    """Erase granularity."""


def checksum(payload: bytes) -> int:
    """The packet checksum: the sum of the payload bytes, modulo 256."""
    return sum(payload) & 0xFF


def escape(data: bytes) -> bytes:
    """Binary data for `X` and `vFlashWrite`: `#$}*` become `}` and the byte XOR 0x20."""
    out = bytearray()
    for byte in data:
        if byte in _ESCAPED:
            out += bytes((0x7D, byte ^ 0x20))
        else:
            out.append(byte)
    return bytes(out)


def decode(payload: bytes) -> bytes:
    """A received payload with escapes and run-length encoding (`X*N`) undone."""
    out = bytearray()
    i = 0
    while i < len(payload):
        byte = payload[i]
        if byte == 0x7D and i + 1 < len(payload):
            out.append(payload[i + 1] ^ 0x20)
            i += 2
        elif byte == 0x2A and out and i + 1 < len(payload):
            count = payload[i + 1] - 29  # the repeat count is printable: N + 29
            if count < 0:
                raise ValueError("a bad run-length count")
            out += bytes((out[-1],)) * count
            i += 2
        else:
            out.append(byte)
            i += 1
    return bytes(out)


def frame(payload: bytes) -> bytes:
    """`$payload#cc`."""
    return b"$" + payload + b"#" + f"{checksum(payload):02x}".encode()


def is_stop_reply(payload: bytes) -> bool:
    """`S05`, `T05thread:…;`, `W00`, `X09`: what a server says when the target stopped."""
    return (
        len(payload) >= 3
        and payload[:1] in (b"S", b"T", b"W", b"X")
        and all(c in b"0123456789abcdefABCDEF" for c in payload[1:3])
    )


def is_error(reply: bytes) -> bool:
    return (len(reply) == 3 and reply[:1] == b"E") or reply.startswith(b"E.")


def parse_memory_map(document: bytes) -> list[FlashBlock]:
    """The `<memory type="flash">` regions of a GDB memory map (gdb's memory-map.dtd)."""
    import xml.etree.ElementTree as ET

    try:
        root = ET.fromstring(document)
    except ET.ParseError:
        return []
    blocks: list[FlashBlock] = []
    for memory in root.iter("memory"):
        if memory.get("type") != "flash":
            continue
        try:
            start = int(memory.get("start", ""), 0)
            length = int(memory.get("length", ""), 0)
            blocksize = next(
                int(p.text or "", 0)
                for p in memory.iter("property")
                if p.get("name") == "blocksize"
            )
        except (ValueError, StopIteration):
            continue
        if length > 0 and blocksize > 0:
            blocks.append(FlashBlock(start, length, blocksize))
    return blocks
