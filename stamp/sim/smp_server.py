"""The SMP server of a simulated MCUboot/Zephyr device, apart from how frames travel.

`SmpServer.answer` takes one SMP frame (header and CBOR) and returns the response frame,
as a Zephyr application with mcumgr answers: MCUmgr parameters, echo, image state read
and write (test / confirm), image upload and erase, and reset. After a reset the device
is away for `reset_delay` seconds (`answer` returns None: what it is sent is lost), then
MCUboot swaps or reverts (`stamp.sim.smp_slots`) and the application boots again.
`stamp.sim.smp` carries the frames over a pseudo-terminal (SMP's serial framing),
`stamp.sim.smp_udp` over UDP datagrams.

Libraries: every message is the `smp` package's (smp.image_management and
smp.os_management request and response classes, smp.header), the same code smpclient
uses on the other side; only the dispatch and the slots are here.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

import cbor2
from pydantic import ValidationError
from smp import error as smperr
from smp import header as smphdr
from smp import image_management as smpimg
from smp import os_management as smpos
from smp.exceptions import SMPException

from stamp.artifact.mcuboot import endian_of
from stamp.device.transport.base import Clock, monotonic
from stamp.sim.smp_slots import SlotError, Slots

log = logging.getLogger("stamp.sim.smp")

BUF_SIZE = 2048
"""The reassembly buffer advertised (CONFIG_MCUMGR_TRANSPORT_NETBUF_SIZE)."""
BUF_COUNT = 4
MAX_IMAGE = 4 * 1024 * 1024
"""Largest upload accepted (a slot's size)."""
DEFAULT_RESET_DELAY = 0.3
"""Seconds the device is away after a reset."""

_OP = smphdr.OP
_GROUP = smphdr.GroupId
_IMG = smphdr.CommandId.ImageManagement
_OS = smphdr.CommandId.OSManagement


class SmpServer:
    """Answers SMP frames for the slots of one simulated device (thread-safe)."""

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
    def running(self) -> bool:
        """Up (not in reset)."""
        return self._booted

    def reset(self) -> None:
        """Reset the device now (as its reset button would)."""
        with self._lock:
            self._go_down()

    def poll(self) -> str | None:
        """Boot when a reset's time is over; the boot banner the console prints, if it did."""
        with self._lock:
            if self._booted or self.clock() < self._up_at:
                return None
            return self._boot()

    def answer(self, frame: bytes) -> bytes | None:
        """The response to one request frame; None when it is dropped (bad, or in reset)."""
        self.poll()
        try:
            header = smphdr.Header.loads(frame[: smphdr.Header.SIZE])
        except (AssertionError, ValueError) as exc:
            log.debug("dropped an SMP frame with a bad header: %s", exc)
            return None
        with self._lock:
            if not self._booted:
                return None  # a device in reset hears nothing
            handler = self._handlers.get((header.group_id, header.command_id, header.op))
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
            if (header.group_id, header.command_id) == (_GROUP.OS_MANAGEMENT, _OS.RESET):
                self._go_down()  # after answering, as Zephyr does
            return response

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
                raise SlotError(
                    smpimg.IMG_MGMT_ERR.INVALID_OFFSET, f"bad image length {request.len}"
                )
            if len(request.data) >= 4 and endian_of(request.data) is None:
                raise SlotError(
                    smpimg.IMG_MGMT_ERR.INVALID_IMAGE_HEADER_MAGIC,
                    "no MCUboot header magic at the start of the upload",
                )
            self._upload_len = None
            self.slots.erase_secondary()  # refused while slot 1 is in use
            self._upload = bytearray()
            self._upload_len = request.len
        if self._upload_len is None:
            raise SlotError(smpimg.IMG_MGMT_ERR.INVALID_OFFSET, "upload not started at offset 0")
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
        self._upload_len = None
        self._up_at = self.clock() + self.reset_delay

    def _boot(self) -> str:
        what = self.slots.reset()
        self._booted = True
        image = self.slots.active
        log.debug("reset %d: %s; running %s", self.slots.resets, what, image.version_text)
        return (
            "*** Booting MCUboot ***\r\n"
            f"I: Swap type: {what}\r\n"
            f"*** Booting Zephyr OS (stamp simulated device), image {image.version_text} ***\r\n"
        )


class ServesSmp:
    """What a board that hands its frames to an `SmpServer` shows of it (mixed into the
    pty board of `stamp.sim.smp` and the UDP board of `stamp.sim.smp_udp`)."""

    server: SmpServer

    @property
    def slots(self) -> Slots:
        return self.server.slots

    @property
    def requests(self) -> int:
        """SMP requests answered so far."""
        return self.server.requests

    def reset(self) -> None:
        """Reset the device (as an SMP reset command does)."""
        self.server.reset()


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


def _image_error(request: smphdr.Header, code: smpimg.IMG_MGMT_ERR) -> bytes:
    """An image management group error (SMP version 2 `err` map)."""
    err = {"group": int(_GROUP.IMAGE_MANAGEMENT), "rc": code}
    length = len(cbor2.dumps({"err": err}, canonical=True))
    return bytes(
        smpimg.ImageManagementErrorV2(
            header=_response_header(request, length),
            err=smperr.Err[smpimg.IMG_MGMT_ERR](group=_GROUP.IMAGE_MANAGEMENT, rc=code),
        )
    )
