"""A simulated MCUboot/Zephyr device speaking SMP on a pseudo-terminal: `stamp sim smp`.

It speaks SMP's serial framing ("SMP over console": each frame base64-encoded with a
length and CRC16, cut into lines that start with 0x06 0x09 or 0x04 0x14), with the
`smp` package's encoder and decoder (smp.packet, as smpclient uses them), and hands
each frame to `stamp.sim.smp_server.SmpServer`. Console output (the boot banner after
a reset) is interleaved, as on a real UART; while nobody has the port open it is lost.
"""

from __future__ import annotations

import logging
from typing import Any

from smp import packet as smppacket
from smp.exceptions import SMPException

from stamp.device.report_line import LineScanner
from stamp.sim.board import PtyBoard
from stamp.sim.smp_server import BUF_SIZE, ServesSmp, SmpServer

log = logging.getLogger("stamp.sim.smp")

MAX_LINE = 4 * BUF_SIZE
"""Longest line accepted: a frame's base64 fits in it many times over."""
IDLE_POLL = 0.05
LINE_LENGTH = 128


class SmpBoard(ServesSmp, PtyBoard):
    """The simulated device on a new pseudo-terminal; `run()` it or `start()` a thread."""

    SCHEME = "smp:serial"
    MAX_STALLS = 200
    """An SMP answer is worth waiting for (up to a second) before it is dropped."""

    def __init__(self, server: SmpServer) -> None:
        self.server = server
        self._decoder: Any = None
        super().__init__()

    def run(self) -> None:
        """Answer SMP requests until `stop()`."""
        scanner = LineScanner(MAX_LINE)
        while not self._stopping:
            banner = self.server.poll()
            if banner is not None:
                self._send(banner.encode())
            if not self.connected:
                scanner = LineScanner(MAX_LINE)
                self._wait([self._wake_r], IDLE_POLL)
                continue
            ready = self._wait([self._master, self._wake_r], IDLE_POLL)
            if self._master not in ready:
                continue
            data = self._read()
            if not self.server.running:
                self._decoder = None
                continue  # a device in reset hears nothing
            for line in scanner.feed(data):
                self._line(line + b"\n")

    # --- framing ------------------------------------------------------------------------

    def _line(self, line: bytes) -> None:
        start = line[: smppacket.DELIMITER_SIZE]
        if start == smppacket.START_DELIMITER:
            self._decoder = smppacket.decode()
            next(self._decoder)
        elif start != smppacket.CONTINUE_DELIMITER or self._decoder is None:
            return  # console input that is not SMP
        try:
            self._decoder.send(line)
        except StopIteration as done:
            self._decoder = None
            response = self.server.answer(bytes(done.value))
            if response is not None:
                for packet in smppacket.encode(response, line_length=LINE_LENGTH):
                    self._send(packet)
        except (ValueError, SMPException) as exc:  # binascii.Error is a ValueError
            log.debug("dropped a bad SMP frame: %s", exc)
            self._decoder = None
