"""Hearing a device on a serial port: a tty, a USB CDC-ACM port, or a pyserial URL.

The port may not exist yet when listening starts (a board re-enumerating on USB after a
flash), and may vanish and come back while we listen (the board resets): both are waited
out until the deadline. The device is asked for its report (`?stamp`) as soon as the port
opens and again every `query_interval` until it answers, so a report printed at boot
before the port was open is not needed (SPEC section 6).

pyserial is imported when a port is opened, not when this module is, and its exceptions
become StampErrors here.
"""

from __future__ import annotations

import errno
import logging
import time
from collections.abc import Iterator
from dataclasses import KW_ONLY, dataclass, field
from typing import Any

from stamp.closing import Closing
from stamp.device.esp_boot import BootLogScanner, boot_report, clean_line
from stamp.device.report_line import QUERY, LineScanner, ReportError, parse_report_line
from stamp.device.transport.base import Clock, Heard, HeardKind, Note, monotonic
from stamp.errors import DeviceError, DeviceUnreachable

log = logging.getLogger("stamp.device.transport.serial")

READ_SLICE = 0.1
"""Seconds one read may block: how often the deadline and the query timer are checked."""
WRITE_TIMEOUT = 0.5
"""Seconds a `?stamp` query may wait for room in the output buffer before it is dropped."""
RESET_HOLD = 0.1
"""Seconds EN is held low by `--reset` (esptool's hard reset for USB-UART bridges)."""
PERMISSION_GRACE = 2.0
"""Seconds "permission denied" is retried before it is an error: a re-enumerated USB port
appears as root-only, and udev gives it to the dialout group a moment later."""

# Errors that mean "not there (yet)" or "gone for now": a USB device between unplug and
# re-enumeration (ENOENT, ENODEV, ENXIO), a pty whose other side closed (EIO), a port a
# modem manager is probing (EBUSY), a TCP serial server not listening yet.
_TRANSIENT_ERRNOS = frozenset(
    {
        errno.ENOENT,
        errno.ENODEV,
        errno.ENXIO,
        errno.EIO,
        errno.EBUSY,
        errno.EAGAIN,
        errno.ECONNREFUSED,
        errno.ECONNRESET,
        errno.ECONNABORTED,
        errno.ETIMEDOUT,
    }
)
_PERMISSION_ERRNOS = frozenset({errno.EACCES, errno.EPERM})


class _PortAbsent(Exception):
    """The port cannot be opened now, but may be later."""

    def __init__(
        self, message: str, denied: DeviceError | None = None, *, refused: bool = False
    ) -> None:
        super().__init__(message)
        self.denied = denied
        """The error to report if permission stays denied."""
        self.refused = refused
        """A network port (socket://, rfc2217://) where nothing accepted the connection."""


class _PortLost(Exception):
    """The open port stopped working (device reset, cable pulled, server closed)."""


def _errno_of(exc: BaseException) -> int | None:
    """The errno behind a pyserial exception, looking through the errors it wraps."""
    import termios

    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, OSError) and seen.errno is not None:
            return seen.errno
        # termios.error (tcgetattr on something that is not a tty) is not an OSError but
        # carries (errno, message) the same way.
        if isinstance(seen, termios.error) and seen.args and isinstance(seen.args[0], int):
            return seen.args[0]
        seen = seen.__cause__ or seen.__context__
    return None


def classify_open_error(port: str, exc: BaseException) -> DeviceError | None:
    """The DeviceError for an open failure that waiting cannot fix; None for a transient one."""
    code = _errno_of(exc)
    if code in _PERMISSION_ERRNOS:
        return DeviceError(
            f"permission denied on {port}: add yourself to the dialout group "
            "(sudo usermod -aG dialout $USER, then log in again)",
            detail=str(exc),
        )
    if code == errno.ENOTTY:
        return DeviceError(f"{port} is not a serial port", detail=str(exc))
    if code in (errno.EISDIR, errno.EINVAL):
        return DeviceError(f"cannot use {port} as a serial port: {exc}", detail=str(exc))
    return None


@dataclass(eq=False)
class SerialTransport(Closing):
    """A device on a serial port, heard line by line; implements `Transport`."""

    port: str
    """A device path (/dev/ttyACM0) or a pyserial URL (socket://127.0.0.1:4444, loop://)."""
    baud: int = 115200
    """Line speed; ignored by ptys, USB CDC-ACM and socket URLs."""
    _: KW_ONLY
    clock: Clock = monotonic
    """The clock of `Heard.at` and of the deadline."""
    query_interval: float = 1.0
    """Seconds between `?stamp` queries while no report has arrived."""
    open_retry: float = 0.2
    """Seconds between attempts to open a port that is not there."""
    query: bool = True
    """Send `?stamp`; False for firmware that does not answer it (an ESP-IDF app
    without stamp, whose report is its boot log)."""
    reset: bool = False
    """Reset the board into its app through DTR/RTS once the port is open (ESP32 dev
    boards' auto-reset circuit), so its boot log is printed again."""
    resets: int = field(default=0, init=False)
    """Resets pulsed so far."""
    _serial: Any = field(default=None, init=False, repr=False)

    def describe(self) -> str:
        return f"serial {self.port} at {self.baud} baud"

    @property
    def is_open(self) -> bool:
        """The port is open right now (only while `listen` runs)."""
        return self._serial is not None

    def listen(self, deadline: float) -> Iterator[Heard]:
        """Lines and reports from the port until `deadline`; the port is closed on exit.

        Raises DeviceError for a port that cannot work (not a tty, a bad URL, permission
        denied for longer than PERMISSION_GRACE) and DeviceUnreachable when the port never
        appeared before the deadline.
        """
        try:
            yield from self._listen(deadline)
        finally:
            self.close()

    def close(self) -> None:
        port, self._serial = self._serial, None
        if port is not None:
            try:
                port.close()
            except Exception as exc:  # a vanished device may fail to close; nothing to do
                log.debug("closing %s: %s", self.port, exc)

    def _listen(self, deadline: float) -> Iterator[Heard]:
        """Long because the port's life (wait for it, open, query, read, reopen after it
        vanished) is one loop with one deadline."""
        announced_wait = False
        opened_once = False
        last_error = ""
        refused = False
        denied: DeviceError | None = None
        denied_since = 0.0
        scanner = LineScanner()
        boot_log = BootLogScanner()
        reported = False
        next_query = 0.0
        while (now := self.clock()) < deadline:
            if self._serial is None:
                try:
                    self._open()
                except _PortAbsent as exc:
                    last_error = str(exc)
                    refused = exc.refused
                    if exc.denied is None:
                        denied = None
                    elif denied is None:
                        denied, denied_since = exc.denied, now
                    elif now - denied_since >= PERMISSION_GRACE:
                        raise denied from None
                    if not announced_wait:
                        announced_wait = True
                        yield Heard.noted(Note.WAITING_FOR_PORT, now, port=self.port)
                    time.sleep(max(0.0, min(self.open_retry, deadline - now)))
                    continue
                denied = None
                scanner = LineScanner()
                boot_log = BootLogScanner()
                reported = not self.query
                next_query = now
                yield Heard.noted(Note.PORT_OPENED, self.clock(), port=self.port)
                if self.reset and not opened_once:
                    yield self._reset_into_app()
                opened_once = True
                continue
            try:
                if not reported and now >= next_query:
                    self._query()
                    next_query = now + self.query_interval
                chunk = self._read()
            except _PortLost as exc:
                self.close()
                announced_wait = True
                yield Heard.noted(Note.PORT_LOST, self.clock(), port=self.port, reason=str(exc))
                continue
            for line in scanner.feed(chunk):
                heard = self._heard(line, boot_log)
                if heard is not None:
                    reported = reported or heard.kind is HeardKind.REPORT
                    yield heard
        if denied is not None:
            raise denied
        if not opened_once and refused:
            raise DeviceUnreachable(
                f"{self.port}: connection refused until the timeout: nothing listens on that "
                "port; is the serial bridge (ser2net, QEMU's -serial tcp:…,server) running?",
                detail=last_error or None,
            )
        if not opened_once:
            raise DeviceUnreachable(
                f"serial port {self.port} did not appear before the timeout: "
                "is the device connected, and is this its port?",
                detail=last_error or None,
            )

    def _open(self) -> None:
        import serial

        # pyserial's RFC 2217 client refuses a write timeout (NotImplementedError); its
        # writes go to a TCP socket, which does not wait for the device to drain them.
        write_timeout = None if self.port.startswith("rfc2217://") else WRITE_TIMEOUT
        try:
            port = serial.serial_for_url(
                self.port,
                baudrate=self.baud,
                timeout=READ_SLICE,
                write_timeout=write_timeout,
            )
        except ValueError as exc:  # unknown URL scheme, impossible baud rate
            raise DeviceError(f"cannot use serial port {self.port}: {exc}") from None
        except (serial.SerialException, OSError) as exc:
            hard = classify_open_error(self.port, exc)
            if hard is not None and _errno_of(exc) not in _PERMISSION_ERRNOS:
                raise hard from None
            log.debug("cannot open %s yet: %s", self.port, exc)
            # pyserial wraps the socket's error in a SerialException raised while handling it.
            refused = isinstance(exc.__context__, ConnectionRefusedError)
            raise _PortAbsent(str(exc), denied=hard, refused=refused) from None
        self._serial = port
        log.debug("opened %s", self.describe())

    def _reset_into_app(self) -> Heard:
        """Pulse EN through RTS with IO0 high through DTR; the note of the outcome.

        This is esptool's `--after hard_reset` for USB-UART bridges (esptool/reset.py
        `HardReset`, esp_pylib `hard_reset`): on the dev boards' two-transistor circuit an
        asserted RTS alone pulls EN low, DTR deasserted keeps IO0 high so the chip boots
        its app and not the ROM download mode (which esptool's ClassicReset enters). DTR
        is written again after each RTS change, as esptool does for Windows' usbser.sys.
        """
        port = self._serial
        try:
            port.dtr = False  # IO0 high: boot the app
            port.rts = True  # EN low: hold the chip in reset
            port.dtr = port.dtr
            time.sleep(RESET_HOLD)
            port.rts = False  # EN high: run
            port.dtr = port.dtr
        except (OSError, ValueError) as exc:
            # ptys, TCP bridges and some USB ROM interfaces have no modem-control lines.
            log.debug("DTR/RTS on %s: %s", self.port, exc)
            return Heard.noted(Note.NO_MODEM_LINES, self.clock(), port=self.port)
        self.resets += 1
        return Heard.noted(Note.BOARD_RESET, self.clock(), seconds=RESET_HOLD)

    def _query(self) -> None:
        import serial

        try:
            self._serial.write(QUERY)
        except serial.SerialTimeoutException:
            # Nobody drains the port's input: the device is busy or not listening yet.
            log.debug("query to %s timed out; will ask again", self.port)
        except (serial.SerialException, OSError) as exc:
            raise _PortLost(str(exc)) from None

    def _read(self) -> bytes:
        import serial

        try:
            waiting = self._serial.in_waiting
            data: bytes = self._serial.read(waiting or 1)
        except (serial.SerialException, OSError) as exc:
            raise _PortLost(str(exc)) from None
        return data

    def _heard(self, line: bytes, boot_log: BootLogScanner) -> Heard | None:
        """The line as heard: a report (`@stamp`, or ESP-IDF's boot-log hash line) or not."""
        text = clean_line(line)  # no device's escape sequences reach a terminal
        if not text:
            return None
        try:
            report = parse_report_line(line, f"serial {self.port}")
        except ReportError as exc:
            log.debug("invalid report line from %s: %s", self.port, exc)
            report = None
        if report is None:
            booted = boot_log.feed(text)
            if booted is not None:
                report = boot_report(booted, f"serial {self.port} boot log")
        if report is None:
            return Heard(HeardKind.LINE, text, self.clock())
        return Heard(HeardKind.REPORT, text, self.clock(), report=report)
