"""A small client of the GDB remote serial protocol (RSP), the language of debug probes.

OpenOCD, pyOCD's gdbserver, SEGGER's J-Link GDB server and QEMU's gdbstub all speak it
(https://sourceware.org/gdb/current/onlinedocs/gdb.html/Remote-Protocol.html). stamp needs
a dozen packets of it: `qSupported`, `?`, `m` (read memory), `qXfer:memory-map:read`, and
`qRcmd` (the server's monitor commands, e.g. `reset halt`), `c` (continue), and for
`stamp flash` `M` and `vFlashErase/Write/Done` (in `stamp.device.flash_gdb`).

Why a protocol client and not gdb-multiarch driven through its machine interface
(pygdbmi): the packets above are a few lines each, while GDB adds a process to start
(about 0.3 s) and stop on every path, its own timeouts and retry rules under ours, and
errors that arrive as text to match ("Remote connection closed", "Cannot access memory
at address 0x…"). A direct client bounds every step with one socket deadline, maps each
failure to one error, and makes "verify never writes to the target" true by
construction: this client has no method that writes memory (`stamp.device.flash_gdb`
adds them in a subclass of its own, for `stamp flash`). pygdbmi was
considered; no maintained Python RSP client library exists on PyPI.

Every read is bounded in time (`step` seconds per reply, never past the caller's
deadline) and in size (MAX_PACKET bytes); anything that is not the protocol is a
`GdbProtocolError` naming what came back.
"""

from __future__ import annotations

import logging
import socket
import time
from collections.abc import Callable
from dataclasses import KW_ONLY, dataclass, field

from stamp.closing import Closing
from stamp.device.transport.rsp_packets import (
    FlashBlock,
    checksum,
    decode,
    frame,
    is_error,
    is_stop_reply,
    parse_memory_map,
)
from stamp.errors import DeviceError, DeviceUnreachable

log = logging.getLogger("stamp.device.gdb")

MAX_PACKET = 256 * 1024
"""The longest reply stamp accepts; a memory read never asks for more than READ_CHUNK."""
READ_CHUNK = 1024
"""Bytes per `m` packet when the server states no PacketSize (GDB's own default is ~400)."""
MAX_READ_CHUNK = 16 * 1024
DEFAULT_STEP = 10.0
"""Seconds one packet exchange may take."""
MAX_MEMORY_MAP = 64 * 1024
SERVER_HINT = (
    "is the GDB server running? e.g. `openocd -f interface/stlink.cfg -f target/stm32f4x.cfg` "
    "(port 3333), `pyocd gdbserver` (3333) or `JLinkGDBServer -device NAME -if SWD` (2331)"
)
_INTERRUPT = b"\x03"


class GdbUnreachable(DeviceUnreachable):
    """The server is not there, refused, dropped the connection or stopped answering."""


class GdbProtocolError(DeviceUnreachable):
    """What came back is not the GDB remote protocol (another service on the port?)."""


class TargetMemoryError(DeviceError):
    """The target cannot read or write the asked addresses (an `E` reply)."""

    def __init__(self, message: str, *, address: int, size: int, code: str) -> None:
        super().__init__(message)
        self.address = address
        self.size = size
        self.code = code


@dataclass(eq=False)
class RspClient(Closing):
    """One connection to a GDB server. Every method raises GdbUnreachable on timeout or
    disconnect, GdbProtocolError on garbage; memory errors are TargetMemoryError."""

    host: str
    """The GDB server's host."""
    port: int
    """Its TCP port."""
    _: KW_ONLY
    deadline: float
    """No exchange goes past this `clock()` time."""
    clock: Callable[[], float] = time.monotonic
    """The clock `deadline` is on."""
    step: float = DEFAULT_STEP
    """Seconds one packet exchange may take."""
    features: dict[str, str] = field(default_factory=dict, init=False)
    """The server's qSupported answer: `PacketSize` → "1000", `qXfer:memory-map:read` → "+"."""
    _sock: socket.socket | None = field(default=None, init=False, repr=False)
    _buffer: bytearray = field(default_factory=bytearray, init=False, repr=False)
    _bad_checksums: int = field(default=0, init=False)

    @property
    def where(self) -> str:
        return f"{self.host}:{self.port}"

    # --- connection ---------------------------------------------------------------------

    def connect(self) -> None:
        """Connect and exchange features (`qSupported`)."""
        try:
            self._sock = socket.create_connection((self.host, self.port), timeout=self._left())
        except ConnectionRefusedError:
            raise GdbUnreachable(
                f"nothing listens on {self.where} (connection refused): {SERVER_HINT}"
            ) from None
        except TimeoutError:
            raise GdbUnreachable(f"{self.where} did not accept a connection in time") from None
        except OSError as exc:
            raise GdbUnreachable(
                f"cannot connect to {self.where}: {exc.strerror or exc}; {SERVER_HINT}"
            ) from None
        # Acks and packets are a few bytes each: Nagle's algorithm would hold every one
        # back for the previous one's acknowledgement (~40 ms a packet on Linux).
        self._sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        reply = self.request(b"qSupported:multiprocess-;swbreak+;hwbreak+", expect_stop=False)
        for item in reply.decode("ascii", errors="replace").split(";"):
            name, eq, value = item.partition("=")
            if eq:
                self.features[name] = value
            elif name.endswith(("+", "-", "?")):
                self.features[name[:-1]] = name[-1]

    def close(self) -> None:
        if self._sock is not None:
            try:
                self._sock.close()
            finally:
                self._sock = None

    def _left(self) -> float:
        left = min(self.step, self.deadline - self.clock())
        if left <= 0:
            raise GdbUnreachable(f"the GDB server at {self.where} did not answer in time")
        return left

    # --- packets ------------------------------------------------------------------------

    def request(self, payload: bytes, *, expect_stop: bool = False) -> bytes:
        """Send one packet and return the reply's decoded payload.

        Stop replies the server sends on its own (QEMU announces the halt it made on
        attach) are skipped unless `expect_stop`; `O` console output (of monitor
        commands) is collected by `monitor`, not here.
        """
        self.send(payload)
        while True:
            reply = self._receive()
            if not expect_stop and is_stop_reply(reply):
                log.debug("gdb: skipped stop reply %r", reply[:40])
                continue
            return reply

    def send(self, payload: bytes) -> None:
        """Send a packet and wait for the server's `+` (resending on `-`, a few times)."""
        log.debug("gdb: -> %r", payload[:80])
        for _ in range(3):
            self._write(frame(payload))
            ack = self._read_byte()
            stray = bytearray()
            while ack not in (b"+", b"-"):
                if ack == b"$":  # a packet before the ack: keep it for _receive
                    self._buffer[:0] = b"$"
                    return
                stray += ack
                if len(stray.strip(b"\x03\r\n")) > 0 and len(stray) >= 8:
                    raise self._garbage(bytes(stray) + bytes(self._buffer))
                ack = self._read_byte()
            if ack == b"+":
                return
        raise GdbProtocolError(f"the GDB server at {self.where} rejected a packet three times")

    def interrupt(self) -> None:
        """Ctrl-C: ask the server to halt a running target."""
        self._write(_INTERRUPT)

    def _write(self, data: bytes) -> None:
        sock = self._connected()
        try:
            sock.settimeout(self._left())
            sock.sendall(data)
        except TimeoutError:
            raise GdbUnreachable(f"the GDB server at {self.where} stopped reading") from None
        except OSError as exc:
            raise self._dropped(exc) from None

    def _connected(self) -> socket.socket:
        if self._sock is None:
            raise GdbUnreachable(f"the connection to {self.where} is closed")
        return self._sock

    def _dropped(self, exc: OSError | None = None) -> GdbUnreachable:
        why = f" ({exc.strerror or exc})" if exc else ""
        return GdbUnreachable(f"the GDB server at {self.where} closed the connection{why}")

    def _fill(self) -> None:
        sock = self._connected()
        try:
            sock.settimeout(self._left())
            chunk = sock.recv(65536)
        except TimeoutError:
            raise GdbUnreachable(
                f"the GDB server at {self.where} did not answer within {self.step:g} s"
            ) from None
        except OSError as exc:
            raise self._dropped(exc) from None
        if not chunk:
            raise self._dropped()
        self._buffer += chunk

    def _read_byte(self) -> bytes:
        while not self._buffer:
            self._fill()
        byte = bytes(self._buffer[:1])
        del self._buffer[:1]
        return byte

    def _receive(self) -> bytes:
        """The next packet's payload (acknowledged), decoded."""
        skipped = 0
        while True:
            start = self._buffer.find(b"$")
            if start >= 0:
                break
            skipped += len(self._buffer)
            self._garbage_check(skipped)
            self._buffer.clear()
            self._fill()
        del self._buffer[:start]
        while True:
            end = self._buffer.find(b"#")
            if end >= 0 and len(self._buffer) >= end + 3:
                break
            if len(self._buffer) > MAX_PACKET:
                raise GdbProtocolError(
                    f"the GDB server at {self.where} sent a packet over {MAX_PACKET} bytes"
                )
            self._fill()
        raw = bytes(self._buffer[1:end])
        sent = bytes(self._buffer[end + 1 : end + 3])
        del self._buffer[: end + 3]
        if f"{checksum(raw):02x}".encode() != sent.lower():
            self._bad_checksums += 1
            if self._bad_checksums > 3:
                raise self._garbage(raw)
            self._write(b"-")
            return self._receive()
        self._bad_checksums = 0
        self._write(b"+")
        log.debug("gdb: <- %r", raw[:80])
        try:
            return decode(raw)
        except ValueError:
            raise self._garbage(raw) from None

    def _garbage_check(self, skipped: int) -> None:
        # Acks and a stray Ctrl-C echo are expected outside packets; text is not.
        stray = self._buffer.strip(b"+-\x03")
        if stray or skipped > 64:
            raise self._garbage(bytes(self._buffer))

    def _garbage(self, data: bytes) -> GdbProtocolError:
        shown = data[:40].decode("ascii", errors="replace").strip()
        return GdbProtocolError(
            f"{self.where} answered {shown!r}, which is not the GDB remote protocol: "
            f"is that port a GDB server? {SERVER_HINT}"
        )

    # --- commands -----------------------------------------------------------------------

    def stop_reason(self) -> bytes:
        """`?`: the stop reply for the target's current state (it is halted for the debugger)."""
        return self.request(b"?", expect_stop=True)

    @property
    def read_chunk(self) -> int:
        size = self.features.get("PacketSize")
        try:
            packet = int(size, 16) if size else 0
        except ValueError:
            packet = 0
        if packet <= 0:
            return READ_CHUNK
        return max(16, min(MAX_READ_CHUNK, (packet - 8) // 2 // 4 * 4))

    def read_memory(self, address: int, size: int) -> bytes:
        """Exactly `size` bytes from `address` (several `m` packets when needed)."""
        out = bytearray()
        while len(out) < size:
            at = address + len(out)
            want = min(self.read_chunk, size - len(out))
            reply = self.request(f"m{at:x},{want:x}".encode())
            if is_error(reply):
                raise TargetMemoryError(
                    f"the target cannot read {want} bytes at {at:#x} "
                    f"(the GDB server answered {reply.decode('ascii', 'replace')})",
                    address=at,
                    size=want,
                    code=reply.decode("ascii", "replace"),
                )
            try:
                data = bytes.fromhex(reply.decode("ascii"))
            except (UnicodeDecodeError, ValueError):
                raise self._garbage(reply) from None
            if not data:
                raise self._garbage(reply or b"an empty reply to a memory read")
            out += data[:want]
        return bytes(out)

    def memory_map(self) -> list[FlashBlock] | None:
        """The flash regions of the server's memory map; None when it offers no map."""
        if self.features.get("qXfer:memory-map:read") != "+":
            return None
        document = bytearray()
        while len(document) < MAX_MEMORY_MAP:
            reply = self.request(f"qXfer:memory-map:read::{len(document):x},fff".encode())
            if not reply or is_error(reply) or reply[:1] not in (b"m", b"l"):
                return None
            document += reply[1:]
            if reply[:1] == b"l":
                break
        return parse_memory_map(bytes(document))

    def monitor(self, command: str) -> str:
        """A server command (`monitor reset halt` in GDB); its console output.

        DeviceError when the server refuses it or has no monitor commands at all.
        """
        self.send(b"qRcmd," + command.encode().hex().encode())
        output: list[str] = []
        while True:
            reply = self._receive()
            if is_stop_reply(reply):
                continue
            if reply == b"OK":
                return "".join(output)
            if reply.startswith(b"O"):
                output.append(self._text(reply[1:]))
                continue
            if reply and not is_error(reply):
                return "".join(output) + self._text(reply)  # the output as the reply
            refused = reply.decode("ascii", "replace") or "an empty reply: no monitor commands"
            raise DeviceError(
                f"the GDB server at {self.where} refused `monitor {command}` ({refused})"
            )

    def _text(self, hexed: bytes) -> str:
        try:
            return bytes.fromhex(hexed.decode("ascii")).decode("utf-8", "replace")
        except (UnicodeDecodeError, ValueError):
            raise self._garbage(hexed) from None

    def resume(self) -> None:
        """`c`: let the target run. The reply comes only when it stops again: not awaited.

        It gets a step of its own past the deadline: a core left halted because the
        reads used up the time would be worse than a late answer.
        """
        self.deadline = max(self.deadline, self.clock() + self.step)
        self.send(b"c")
