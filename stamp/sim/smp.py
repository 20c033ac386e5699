"""A simulated MCUboot/Zephyr device speaking SMP on a pseudo-terminal: `stamp sim smp`.

It speaks SMP's serial framing ("SMP over console": each frame base64-encoded with a
length and CRC16, cut into lines that start with 0x06 0x09 or 0x04 0x14) and answers the
requests an SMP client sends to update and inspect a Zephyr application: MCUmgr
parameters, echo, image state read and write (test / confirm), image upload and erase,
and reset. The slots behave as MCUboot's swap does (`stamp.sim.smp_slots`): a tested
image runs unconfirmed after a reset and is reverted by the next one unless confirmed.
After a reset the device is away for `reset_delay` seconds (what it is sent is lost),
then prints a boot banner, as a board does.

Libraries: the framing and every message are the `smp` package's (smp.packet's encoder
and decoder, smp.image_management / smp.os_management request and response classes),
the same code smpclient uses on the other side; only the dispatch and the slots are here.
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
from collections.abc import Callable
from typing import Any

import cbor2
from pydantic import ValidationError
from smp import error as smperr
from smp import header as smphdr
from smp import image_management as smpimg
from smp import os_management as smpos
from smp import packet as smppacket
from smp.exceptions import SMPException

from stamp.artifact.mcuboot import endian_of
from stamp.closing import Closing
from stamp.device.report import LineScanner
from stamp.device.transport.base import Clock, monotonic
from stamp.sim.smp_slots import INVALID_IMAGE_HEADER_MAGIC, INVALID_OFFSET, SlotError, Slots

log = logging.getLogger("stamp.sim.smp")

BUF_SIZE = 2048
"""The reassembly buffer advertised (CONFIG_MCUMGR_TRANSPORT_NETBUF_SIZE)."""
BUF_COUNT = 4
MAX_LINE = 4 * BUF_SIZE
"""Longest line accepted: a frame's base64 fits in it many times over."""
MAX_IMAGE = 4 * 1024 * 1024
"""Largest upload accepted (a slot's size)."""
DEFAULT_RESET_DELAY = 0.3
"""Seconds the device is away after a reset."""
IDLE_POLL = 0.05
LINE_LENGTH = 128
MAX_STALLS = 200
"""Times a write to a client that does not read waits 5 ms before the bytes are dropped."""

_OP = smphdr.OP
_GROUP = smphdr.GroupId
_IMG = smphdr.CommandId.ImageManagement
_OS = smphdr.CommandId.OSManagement


class SmpBoard(Closing):
    """The simulated device on a new pseudo-terminal; `run()` it or `start()` a thread."""

    def __init__(
        self, slots: Slots, *, reset_delay: float = DEFAULT_RESET_DELAY, clock: Clock = monotonic
    ) -> None:
        self.slots = slots
        self.reset_delay = reset_delay
        self.clock = clock
        self.requests = 0
        """SMP requests answered so far."""
        self._upload = bytearray()
        self._upload_len: int | None = None
        self._up_at = 0.0
        self._booted = True
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
        self._lock = threading.Lock()
        self._handlers: dict[tuple[int, int, int], Callable[[bytes, smphdr.Header], bytes]] = {
            (_GROUP.IMAGE_MANAGEMENT, _IMG.STATE, _OP.READ): self._state_read,
            (_GROUP.IMAGE_MANAGEMENT, _IMG.STATE, _OP.WRITE): self._state_write,
            (_GROUP.IMAGE_MANAGEMENT, _IMG.UPLOAD, _OP.WRITE): self._upload_write,
            (_GROUP.IMAGE_MANAGEMENT, _IMG.ERASE, _OP.WRITE): self._erase,
            (_GROUP.OS_MANAGEMENT, _OS.RESET, _OP.WRITE): self._reset,
            (_GROUP.OS_MANAGEMENT, _OS.MCUMGR_PARAMETERS, _OP.READ): self._params,
            (_GROUP.OS_MANAGEMENT, _OS.ECHO, _OP.WRITE): self._echo,
        }

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

    def reset(self) -> None:
        """Reset the device now (as its reset button would)."""
        with self._lock:
            self._go_down()

    def run(self) -> None:
        """Answer SMP requests until `stop()`."""
        scanner = LineScanner(MAX_LINE)
        while not self._stopping:
            if not self._booted and self.clock() >= self._up_at:
                self._boot()
            if not self.connected:
                scanner = LineScanner(MAX_LINE)
                self._wait([self._wake_r], IDLE_POLL)
                continue
            ready = self._wait([self._master, self._wake_r], IDLE_POLL)
            if self._master not in ready:
                continue
            data = self._read()
            if not self._booted:
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
            self._frame(bytes(done.value))
        except (ValueError, SMPException) as exc:  # binascii.Error is a ValueError
            log.debug("dropped a bad SMP frame: %s", exc)
            self._decoder = None

    def _frame(self, frame: bytes) -> None:
        try:
            header = smphdr.Header.loads(frame[: smphdr.Header.SIZE])
        except (AssertionError, ValueError) as exc:
            log.debug("dropped an SMP frame with a bad header: %s", exc)
            return
        handler = self._handlers.get((header.group_id, header.command_id, header.op))
        with self._lock:
            try:
                if handler is None:
                    response = _error_v1(header, smperr.MGMT_ERR.ENOTSUP)
                else:
                    response = handler(frame, header)
            except SlotError as exc:
                log.debug("refused: %s", exc)
                response = _image_error(header, exc.code)
            except (ValidationError, ValueError, SMPException, cbor2.CBORDecodeError) as exc:
                log.debug("malformed request: %s", exc)
                response = _error_v1(header, smperr.MGMT_ERR.EINVAL)
        self.requests += 1
        for packet in smppacket.encode(response, line_length=LINE_LENGTH):
            self._send(packet)
        if (header.group_id, header.command_id) == (_GROUP.OS_MANAGEMENT, _OS.RESET):
            with self._lock:
                self._go_down()

    # --- requests -----------------------------------------------------------------------

    def _images(self) -> list[smpimg.ImageState]:
        return [smpimg.ImageState(**state) for state in self.slots.states()]  # type: ignore[arg-type]

    def _state_read(self, frame: bytes, header: smphdr.Header) -> bytes:
        smpimg.ImageStatesReadRequest.loads(frame)
        return bytes(
            smpimg.ImageStatesReadResponse(sequence=header.sequence, images=self._images())
        )

    def _state_write(self, frame: bytes, header: smphdr.Header) -> bytes:
        request = smpimg.ImageStatesWriteRequest.loads(frame)
        self.slots.set_state(request.hash, request.confirm)
        return bytes(
            smpimg.ImageStatesWriteResponse(sequence=header.sequence, images=self._images())
        )

    def _upload_write(self, frame: bytes, header: smphdr.Header) -> bytes:
        request = smpimg.ImageUploadWriteRequest.loads(frame)
        if request.off == 0:
            if request.len is None or not 0 < request.len <= MAX_IMAGE:
                raise SlotError(INVALID_OFFSET, f"bad image length {request.len}")
            if len(request.data) >= 4 and endian_of(request.data) is None:
                raise SlotError(
                    INVALID_IMAGE_HEADER_MAGIC, "no MCUboot header magic at the start of the upload"
                )
            self._upload = bytearray()
            self._upload_len = request.len
            self.slots.erase_secondary()
        if self._upload_len is None:
            raise SlotError(INVALID_OFFSET, "upload not started at offset 0")
        if request.off == len(self._upload):
            self._upload += request.data[: self._upload_len - len(self._upload)]
        if len(self._upload) == self._upload_len:
            self.slots.upload(bytes(self._upload))
            self._upload_len = None
            done = len(self._upload)
            self._upload = bytearray()
            return bytes(smpimg.ImageUploadWriteResponse(sequence=header.sequence, off=done))
        return bytes(
            smpimg.ImageUploadWriteResponse(sequence=header.sequence, off=len(self._upload))
        )

    def _erase(self, frame: bytes, header: smphdr.Header) -> bytes:
        smpimg.ImageEraseRequest.loads(frame)
        self.slots.erase_secondary()
        return bytes(smpimg.ImageEraseResponse(sequence=header.sequence))

    def _reset(self, frame: bytes, header: smphdr.Header) -> bytes:
        smpos.ResetWriteRequest.loads(frame)
        return bytes(smpos.ResetWriteResponse(sequence=header.sequence))

    def _params(self, frame: bytes, header: smphdr.Header) -> bytes:
        return bytes(
            smpos.MCUMgrParametersReadResponse(
                sequence=header.sequence, buf_size=BUF_SIZE, buf_count=BUF_COUNT
            )
        )

    def _echo(self, frame: bytes, header: smphdr.Header) -> bytes:
        request = smpos.EchoWriteRequest.loads(frame)
        return bytes(smpos.EchoWriteResponse(sequence=header.sequence, r=request.d))

    # --- reset and boot -----------------------------------------------------------------

    def _go_down(self) -> None:
        self._booted = False
        self._decoder = None
        self._upload_len = None
        self._up_at = self.clock() + self.reset_delay

    def _boot(self) -> None:
        what = self.slots.reset()
        self._booted = True
        image = self.slots.active
        log.debug("reset %d: %s; running %s", self.slots.resets, what, image.version_text)
        banner = (
            "*** Booting MCUboot ***\r\n"
            f"I: Swap type: {what}\r\n"
            f"*** Booting Zephyr OS (stamp simulated device), image {image.version_text} ***\r\n"
        )
        self._send(banner.encode())

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


def _response_header(request: smphdr.Header, length: int) -> smphdr.Header:
    op = _OP.READ_RSP if request.op == _OP.READ else _OP.WRITE_RSP
    return smphdr.Header(
        op=op,
        version=request.version,
        flags=smphdr.Flag(0),
        length=length,
        group_id=request.group_id,
        sequence=request.sequence,
        command_id=request.command_id,
    )


def _error_v1(request: smphdr.Header, rc: smperr.MGMT_ERR) -> bytes:
    """An SMP version 1 error (`rc` only), as Zephyr answers an unknown command."""
    length = len(cbor2.dumps({"rc": int(rc)}, canonical=True))
    return bytes(smperr.ErrorV1(header=_response_header(request, length), rc=rc))


def _image_error(request: smphdr.Header, code: int) -> bytes:
    """An image management group error (SMP version 2 `err` map)."""
    err = {"group": int(_GROUP.IMAGE_MANAGEMENT), "rc": code}
    length = len(cbor2.dumps({"err": err}, canonical=True))
    return bytes(
        smpimg.ImageManagementErrorV2(
            header=_response_header(request, length),
            err=smperr.Err[smpimg.IMG_MGMT_ERR](
                group=_GROUP.IMAGE_MANAGEMENT, rc=smpimg.IMG_MGMT_ERR(code)
            ),
        )
    )
