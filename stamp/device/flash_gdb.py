"""`stamp flash` through a debug probe's GDB server: load, reset, run, then read it back.

What GDB's `load` does, over the same RSP client `stamp verify` uses
(`stamp.device.transport.rsp`): every loadable section of the ELF (or of the .bin, at
the addresses its manifest recorded) is written to the target — with the server's flash
commands (`vFlashErase`, `vFlashWrite`, `vFlashDone`) where its memory map says flash, as
OpenOCD, pyOCD and J-Link need, and with plain memory writes (`M`) elsewhere, which is
how QEMU's gdbstub takes an image. Then the core is reset through the server's monitor
command and let run, and the device is verified by `GdbTransport`.

The reset command differs by server and no packet asks which server it is: `reset halt`
(OpenOCD, pyOCD), `reset` (J-Link), `system_reset` (QEMU's monitor) are tried in order;
a refusal or an "unknown command" answer moves to the next.

A device with a `flash_command` in the config runs that command instead of loading.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from stamp.artifact.memory import Region
from stamp.closing import Closing
from stamp.device.flash_image import FlashImage
from stamp.device.flashers import CommandFlasher
from stamp.device.target import GdbTarget
from stamp.device.transport.base import Clock, Transport
from stamp.device.transport.gdb import NO_LAYOUT, GdbTransport, address
from stamp.device.transport.rsp import RspClient, TargetMemoryError
from stamp.device.transport.rsp_packets import FlashBlock, escape, is_error
from stamp.errors import ArtifactError, DeviceError, DeviceUnreachable, FlashError

LOAD_TIMEOUT = 600.0
"""Seconds one load may take (a probe programs flash at tens of KB/s)."""
RESET_COMMANDS = ("reset halt", "reset", "system_reset")
UNKNOWN_COMMAND = "unknown"


@dataclass(frozen=True)
class Piece:
    """Bytes to put at an address."""

    address: int
    """Where the first byte goes (the section's load address)."""
    data: bytes
    """The bytes, in address order."""


def image_pieces(image: FlashImage) -> list[Piece]:
    """The loadable sections of the ELF, else of the .bin at the manifest's addresses."""
    from stamp.artifact.image import load_file

    if image.elf is not None:
        elf = load_file(image.elf).elf
        assert elf is not None
        return [
            Piece(s.lma, elf.image[s.lma - elf.base : s.lma - elf.base + s.size])
            for s in sorted(elf.sections, key=lambda s: s.lma)
        ]
    layout = image.manifest.memory
    if image.bin is None or layout is None:
        raise ArtifactError(
            f"loading through a GDB server needs the ELF, or a .bin and a manifest with "
            f"memory addresses; {image.manifest_path}: {NO_LAYOUT}"
        )
    data = load_file(image.bin).facts.path.read_bytes()
    return [
        Piece(r.address, data[r.address - layout.base : r.end - layout.base])
        for r in layout.regions
    ]


class RspLoader(RspClient):
    """The RSP client with memory and flash writes: only `stamp flash` uses one."""

    def write_memory(self, address: int, data: bytes) -> None:
        """`M` packets: RAM, or a simulator's flash (QEMU writes ROM for the debugger)."""
        chunk = self.read_chunk
        for offset in range(0, len(data), chunk):
            piece = data[offset : offset + chunk]
            at = address + offset
            self._expect_ok(f"M{at:x},{len(piece):x}:".encode() + piece.hex().encode(), at, piece)

    def flash_erase(self, address: int, size: int) -> None:
        self._expect_ok(f"vFlashErase:{address:x},{size:x}".encode(), address, b"\0" * size)

    def flash_write(self, address: int, data: bytes) -> None:
        # Escaping can double a chunk's size: half the packet size keeps it within.
        chunk = max(16, self.read_chunk)
        for offset in range(0, len(data), chunk):
            piece = data[offset : offset + chunk]
            at = address + offset
            self._expect_ok(f"vFlashWrite:{at:x}:".encode() + escape(piece), at, piece)

    def flash_done(self) -> None:
        self._expect_ok(b"vFlashDone", 0, b"")

    def _expect_ok(self, packet: bytes, address: int, data: bytes) -> None:
        reply = self.request(packet)
        if reply == b"OK":
            return
        code = reply.decode("ascii", "replace")
        if is_error(reply):
            raise TargetMemoryError(
                f"the target refused to write {len(data)} bytes at {address:#x} "
                f"(the GDB server answered {code})",
                address=address,
                size=len(data),
                code=code,
            )
        raise self._garbage(reply or b"an empty reply (the server does not support it)")


class GdbFlasher(Closing):
    """Loads an image through a GDB server (or runs the device's flash command)."""

    flash_while_listening = False

    def __init__(self, target: GdbTarget, command: CommandFlasher | None = None) -> None:
        self.target = target
        self.command = command
        self.pieces: list[Piece] = []
        self.image: FlashImage | None = None

    def describe(self) -> str:
        if self.command is not None:
            return self.command.describe()
        return f"through the GDB server {self.target.host}:{self.target.port}"

    def prepare(self, image: FlashImage) -> None:
        if image.manifest.memory is None:
            raise ArtifactError(f"{image.manifest_path}: {NO_LAYOUT}")
        self.image = image
        if self.command is not None:
            self.command.prepare(image)
        else:
            self.pieces = image_pieces(image)

    def flash(self, image: FlashImage, say: Callable[[str], None]) -> None:
        if self.command is not None:
            self.command.flash(image, say)
            return
        client = RspLoader(
            self.target.host, self.target.port, deadline=time.monotonic() + LOAD_TIMEOUT
        )
        try:
            client.connect()
            client.stop_reason()
            started = time.monotonic()
            total = self._load(client)
            seconds = time.monotonic() - started
            say(f"stamp: loaded {total} bytes in {seconds:.2f} s")
            command = self._reset(client)
            say(f"stamp: reset (`monitor {command}`), running")
            client.resume()
        except (DeviceUnreachable, DeviceError) as exc:
            raise FlashError(f"loading through {client.where} failed: {exc.message}") from None
        finally:
            client.close()

    def _load(self, client: RspLoader) -> int:
        blocks = client.memory_map() or []
        in_flash = [p for p in self.pieces if _block_of(p, blocks) is not None]
        erased: set[tuple[int, int]] = set()
        for piece in in_flash:
            block = _block_of(piece, blocks)
            assert block is not None
            low = piece.address - (piece.address - block.start) % block.blocksize
            high = piece.address + len(piece.data)
            high += -(high - block.start) % block.blocksize
            if (low, high) not in erased:
                client.flash_erase(low, high - low)
                erased.add((low, high))
        for piece in in_flash:
            client.flash_write(piece.address, piece.data)
        if in_flash:
            client.flash_done()
        for piece in self.pieces:
            if piece not in in_flash:
                try:
                    client.write_memory(piece.address, piece.data)
                except TargetMemoryError as exc:
                    raise DeviceError(
                        f"{exc.message}: is {address(piece.address)} flash the server "
                        "cannot program (no memory map), or is the image for another target?"
                    ) from None
        return sum(len(p.data) for p in self.pieces)

    def _reset(self, client: RspClient) -> str:
        refusals: list[str] = []
        for command in RESET_COMMANDS:
            try:
                output = client.monitor(command)
            except DeviceError as exc:
                refusals.append(exc.message)
                continue
            if UNKNOWN_COMMAND not in output.lower():
                return command
            refusals.append(f"`monitor {command}`: {output.strip()[:80]}")
        raise DeviceError("no reset command worked: " + "; ".join(refusals))

    def open(self, since: float, clock: Clock) -> Transport:
        assert self.image is not None, "prepare() first"
        # Memory holds no history: what it holds after the flash is the answer.
        layout = self.image.manifest.memory
        return GdbTransport(self.target.host, self.target.port, layout, clock=clock)

    def close(self) -> None:
        pass


def _block_of(piece: Piece, blocks: list[FlashBlock]) -> FlashBlock | None:
    region = Region(piece.address, len(piece.data))
    for block in blocks:
        if block.start <= region.address and region.end <= block.start + block.length:
            return block
    return None
