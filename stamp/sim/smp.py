"""A simulated MCUboot/Zephyr device speaking SMP on a pseudo-terminal: `stamp sim smp`.

It speaks SMP's serial framing ("SMP over console": each frame base64-encoded with a
length and CRC16, cut into lines that start with 0x06 0x09 or 0x04 0x14), with the
`smp` package's encoder and decoder (smp.packet, as smpclient uses them), and hands
each frame to `stamp.sim.smp_server.SmpServer`. Console output (the boot banner after
a reset) is interleaved, as on a real UART; while nobody has the port open it is lost.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import logging
import os
import select
import threading
import tty
from typing import Any

from smp import packet as smppacket
from smp.exceptions import SMPException

from stamp.closing import Closing
from stamp.device.report import LineScanner
from stamp.sim.smp_server import BUF_SIZE, SmpServer
from stamp.sim.smp_slots import Slots

log = logging.getLogger("stamp.sim.smp")

MAX_LINE = 4 * BUF_SIZE
"""Longest line accepted: a frame's base64 fits in it many times over."""
IDLE_POLL = 0.05
LINE_LENGTH = 128
MAX_STALLS = 200
"""Times a write to a client that does not read waits 5 ms before the bytes are dropped."""


class SmpBoard(Closing):
    """The simulated device on a new pseudo-terminal; `run()` it or `start()` a thread."""

    def __init__(self, server: SmpServer) -> None:
        self.server = server
        self._decoder: Any = None
        self._master, slave = os.openpty()
        try:
            tty.setraw(slave)
            path = os.ttyname(slave)
        except BaseException:
            os.close(self._master)
            raise
        finally:
            os.close(slave)  # only clients hold it: POLLHUP on the master = nobody there
        self.path = path
        """The pty's device path, e.g. /dev/pts/3."""
        flags = fcntl.fcntl(self._master, fcntl.F_GETFL)
        fcntl.fcntl(self._master, fcntl.F_SETFL, flags | os.O_NONBLOCK)
        self._wake_r, self._wake_w = os.pipe()
        self._stopping = False
        self._thread: threading.Thread | None = None
        self._closed = False

    @property
    def slots(self) -> Slots:
        return self.server.slots

    @property
    def requests(self) -> int:
        return self.server.requests

    def reset(self) -> None:
        self.server.reset()

    @property
    def device(self) -> str:
        """The `--device` URL for stamp, e.g. "smp:serial:/dev/pts/3"."""
        return f"smp:serial:{self.path}"

    @property
    def connected(self) -> bool:
        if self._closed:
            return False
        poller = select.poll()
        poller.register(self._master, select.POLLIN)
        return not any(ev & select.POLLHUP for _, ev in poller.poll(0))

    def start(self) -> None:
        self._thread = threading.Thread(target=self.run, name=f"sim smp {self.path}", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Make `run()` return soon; safe from a signal handler or another thread."""
        self._stopping = True
        with contextlib.suppress(OSError):
            os.write(self._wake_w, b"x")

    def close(self) -> None:
        self.stop()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        if not self._closed:
            self._closed = True
            for fd in (self._master, self._wake_r, self._wake_w):
                os.close(fd)

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

    # --- the pty ------------------------------------------------------------------------

    def _wait(self, fds: list[int], timeout: float) -> list[int]:
        poller = select.poll()
        for fd in fds:
            poller.register(fd, select.POLLIN)
        events = poller.poll(timeout * 1000.0)
        if any(fd == self._wake_r for fd, _ in events):
            os.read(self._wake_r, 64)
        return [fd for fd, ev in events if ev & select.POLLIN]

    def _read(self) -> bytes:
        try:
            return os.read(self._master, 65536)
        except OSError as exc:
            if exc.errno not in (errno.EIO, errno.EAGAIN):
                raise
            return b""

    def _send(self, data: bytes) -> None:
        if not self.connected:
            return
        view = memoryview(data)
        stalls = 0
        while view:
            try:
                written = os.write(self._master, view)
            except OSError as exc:
                # EAGAIN: the client is not reading; wait a little, then drop it as a UART
                # would. EIO: it closed the port.
                if exc.errno == errno.EAGAIN and stalls < MAX_STALLS:
                    stalls += 1
                    self._wait([], 0.005)
                    continue
                if exc.errno in (errno.EAGAIN, errno.EIO):
                    log.debug("%s: %d bytes lost (%s)", self.path, len(view), exc.strerror)
                    return
                raise
            view = view[written:]
