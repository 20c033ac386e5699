"""MCUboot/Zephyr devices over SMP (mcumgr): `SmpSession` and the `SmpTransport`.

smpclient (the maintained Python SMP client, asyncio-based) does the protocol: serial
framing or UDP datagrams, sequence numbers, CBOR, upload chunking sized from the server's
MCUmgr parameters. `SmpSession` runs it on an event loop of its own in the calling
thread, so the rest of stamp stays synchronous, and bounds every request in time.
smpclient's own errors (TimeoutError, SMPTransportDisconnected, pyserial's
SerialException, an error response) become `DeviceUnreachable` or `FlashError`.

`SmpTransport` is the `Transport` `stamp verify` listens on: it reads the image state
(retrying until the device answers or the deadline passes) and yields it as one report
whose identity is the *active* slot's hash (`mcuboot_hash`).
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import AsyncIterator, Callable, Coroutine, Iterator
from typing import Any, TypeVar

from stamp.closing import Closing
from stamp.device.image_state import ImageStates, states_from_smp
from stamp.device.target import SmpTarget
from stamp.device.transport.base import Clock, Heard, HeardKind, Note, monotonic
from stamp.errors import DeviceError, DeviceUnreachable, FlashError, FlashRefused

log = logging.getLogger("stamp.device.smp")
# smpclient logs every timeout at ERROR level with a traceback; with no handler of its
# own Python would print that on stderr. stamp says what happened in one sentence instead.
for _name in ("smpclient", "smp"):
    logging.getLogger(_name).addHandler(logging.NullHandler())
    logging.getLogger(_name).propagate = False

INSTALL_HINT = "SMP devices need smpclient: pip install 'stamp-firmware[smp]'"
REQUEST_TIMEOUT = 2.5
"""Seconds one SMP request may take (smpclient's default)."""
UPLOAD_FIRST_TIMEOUT = 40.0
"""Seconds the first upload chunk may take (the device erases the slot first)."""
RETRY_INTERVAL = 0.2
"""Seconds between attempts to reach a device that did not answer."""

T = TypeVar("T")


class SmpSession(Closing):
    """One smpclient connection, driven synchronously; `close()` it (or use `with`)."""

    def __init__(self, address: SmpTarget) -> None:
        try:
            import smpclient  # noqa: F401  (the optional `smp` extra)
        except ImportError:
            raise DeviceError(INSTALL_HINT) from None
        self.address = address
        self._runner = asyncio.Runner()
        self._client: Any = None

    @property
    def connected(self) -> bool:
        return self._client is not None

    def connect(self, timeout: float) -> None:
        """Open the port or socket and read the server's MCUmgr parameters."""
        from smpclient import SMPClient

        a = self.address
        if a.kind == "serial" and "://" not in a.where and not os.path.exists(a.where):
            raise DeviceUnreachable(f"{a.where} does not exist: is the device plugged in?")
        transport = _transport(a)
        client = SMPClient(transport, a.where, timeout_s=REQUEST_TIMEOUT)
        self._call(_connect(client, transport, a, timeout), timeout + REQUEST_TIMEOUT)
        self._client = client

    def disconnect(self) -> None:
        """Close the port (the device is going away, e.g. for a reset)."""
        client, self._client = self._client, None
        if client is not None:
            try:
                self._runner.run(client.disconnect())
            except Exception as exc:  # a port that vanished under us: closing is all we want
                log.debug("disconnect: %r", exc)

    def close(self) -> None:
        self.disconnect()
        self._runner.close()

    def read_states(self, timeout: float = REQUEST_TIMEOUT) -> ImageStates:
        from smpclient.requests.image_management import ImageStatesRead

        response = self._request(ImageStatesRead(), timeout)
        return states_from_smp(response.images)

    def test(self, hash_hex: str) -> ImageStates:
        """Mark the image with this hash for test (it runs, unconfirmed, after a reset)."""
        from smpclient.requests.image_management import ImageStatesWrite

        response = self._request(ImageStatesWrite(hash=bytes.fromhex(hash_hex), confirm=False))
        return states_from_smp(response.images)

    def confirm(self, hash_hex: str) -> ImageStates:
        """Confirm the image with this hash (the running one: it stays)."""
        from smpclient.requests.image_management import ImageStatesWrite

        response = self._request(ImageStatesWrite(hash=bytes.fromhex(hash_hex), confirm=True))
        return states_from_smp(response.images)

    def reset(self) -> None:
        from smpclient.requests.os_management import ResetWrite

        self._request(ResetWrite())

    def upload(self, image: bytes, progress: Callable[[int], None] | None = None) -> None:
        """Upload `image` into the secondary slot; FlashError when the device refuses it."""
        client = self._need_client()

        async def run() -> None:
            from smpclient.exceptions import SMPUploadError

            offsets: AsyncIterator[int] = client.upload(
                image, first_timeout_s=UPLOAD_FIRST_TIMEOUT, subsequent_timeout_s=REQUEST_TIMEOUT
            )
            try:
                async for offset in offsets:
                    if progress is not None:
                        progress(offset)
            except SMPUploadError as exc:
                refusal = exc.args[0] if exc.args else None
                if isinstance(refusal, str | None):
                    raise
                from smp.image_management import IMG_MGMT_ERR

                # An error response: its code, not its repr.
                code = _error_text(refusal)
                # img_mgmt's refusal to overwrite slot 1 while it holds the image a revert
                # brings back, or one marked to run (Zephyr's img_mgmt_slot_in_use, without
                # CONFIG_MCUMGR_GRP_IMG_ALLOW_ERASE_PENDING): final until the user acts.
                if _error_rc(refusal) == IMG_MGMT_ERR.NO_FREE_SLOT:
                    raise FlashRefused(
                        f"the device refused the upload: {code}: its slot 1 holds the image a "
                        "revert would bring back (the running image is not confirmed) or one "
                        "marked to run; confirm the running image or reset the device, then "
                        "flash again"
                    ) from None
                raise FlashError(f"the device refused the upload: {code}") from None

        # Bounded: every chunk is (smpclient's per-request timeouts), and so is the whole.
        self._call(run(), UPLOAD_FIRST_TIMEOUT + REQUEST_TIMEOUT * (len(image) // 64 + 1))

    # --- plumbing -----------------------------------------------------------------------

    def _need_client(self) -> Any:
        if self._client is None:
            raise DeviceUnreachable(f"{self.address.describe()} is not connected")
        return self._client

    def _request(self, request: Any, timeout: float = REQUEST_TIMEOUT) -> Any:
        from smpclient.generics import error

        client = self._need_client()
        response = self._call(client.request(request, timeout_s=timeout), timeout + 1.0)
        if error(response):
            raise FlashError(
                f"the device refused {type(request).__name__}: {_error_text(response)}"
            )
        return response

    def _call(self, coro: Coroutine[Any, Any, T], timeout: float) -> T:
        """Run `coro` to completion within `timeout` s, translating smpclient's errors."""
        from serial import SerialException
        from smpclient.exceptions import SMPClientException
        from smpclient.transport import SMPTransportDisconnected

        async def bounded() -> T:
            return await asyncio.wait_for(coro, timeout)

        try:
            return self._runner.run(bounded())
        except TimeoutError:
            raise DeviceUnreachable(
                f"{self.address.describe()}: no SMP answer within {timeout:g} s"
            ) from None
        except (SMPTransportDisconnected, SerialException, OSError) as exc:
            raise DeviceUnreachable(f"{self.address.describe()}: {exc}", detail=repr(exc)) from None
        except SMPClientException as exc:
            raise FlashError(f"{self.address.describe()}: {exc}", detail=repr(exc)) from None


async def _connect(client: Any, transport: Any, address: SmpTarget, timeout: float) -> None:
    if address.kind == "udp":
        await transport.connect(address.where, timeout, port=address.port)
        await client._initialize()  # smpclient's connect() knows no UDP port
    else:
        await client.connect(timeout)


def _transport(address: SmpTarget) -> Any:
    if address.kind == "udp":
        from smpclient.transport.udp import SMPUDPTransport

        return SMPUDPTransport()
    from smpclient.transport.serial import SMPSerialTransport

    return SMPSerialTransport(baudrate=address.baud)


def _error_rc(response: Any) -> object:
    """The error code of an SMP error response (version 2 `err.rc`, or version 1 `rc`)."""
    err = getattr(response, "err", None)
    return err.rc if err is not None else getattr(response, "rc", None)


def _error_text(response: Any) -> str:
    """The error code's name (e.g. NO_FREE_SLOT), or its number when it has none."""
    rc = _error_rc(response)
    return getattr(rc, "name", str(rc))


class SmpTransport(Closing):
    """Hears an SMP device: its image state, as one report (see the module docstring)."""

    def __init__(self, address: SmpTarget, *, clock: Clock = monotonic) -> None:
        self.address = address
        self.clock = clock
        self._session = SmpSession(address)

    def describe(self) -> str:
        return self.address.describe()

    def close(self) -> None:
        self._session.close()

    def listen(self, deadline: float) -> Iterator[Heard]:
        """Read the image state once the device answers; one REPORT, then stop."""
        from stamp.device.report_line import smp_report

        last: str | None = None
        while True:
            remaining = deadline - self.clock()
            if remaining <= 0:
                if last is not None:
                    raise DeviceUnreachable(last)
                return
            try:
                if not self._session.connected:
                    self._session.connect(min(remaining, REQUEST_TIMEOUT))
                    yield Heard.noted(Note.SMP_CONNECTED, self.clock(), where=self.describe())
                states = self._session.read_states(min(max(remaining, 0.1), REQUEST_TIMEOUT))
            except DeviceUnreachable as exc:
                if exc.message != last:
                    yield Heard.noted(Note.NO_SMP_ANSWER, self.clock())
                last = exc.message
                self._session.disconnect()
                _sleep(min(RETRY_INTERVAL, max(0.0, deadline - self.clock())))
                continue
            report = smp_report(states)
            active = states.active
            now = self.clock()
            if active is None:
                yield Heard.noted(Note.NO_ACTIVE_SLOT, now, kind=HeardKind.REPORT, report=report)
            else:
                yield Heard.noted(
                    Note.IMAGE_STATE,
                    now,
                    kind=HeardKind.REPORT,
                    report=report,
                    slot=active.slot,
                    version=active.version,
                    hash=active.hash,
                )
            return


def _sleep(seconds: float) -> None:
    import time

    time.sleep(seconds)
