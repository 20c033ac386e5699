"""The one interface every way of hearing a device implements.

A transport is opened, then `listen()` yields `Heard` items until the caller stops
iterating or the deadline passes; `close()` releases the port or connection on every exit
path (use it as a context manager). Progress shown to the user and the timeout message
("port opened, 3 lines received, none was a report") are built from what was heard.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from enum import Enum
from types import TracebackType
from typing import Protocol

from stamp.device.report_line import Report

Clock = Callable[[], float]
"""A monotonic clock in seconds; `time.monotonic` unless a test passes another."""


class HeardKind(Enum):
    """What kind of thing a transport heard."""

    REPORT = "report"
    """A valid identity report (serial line, cloud `stamp` event or variable, app-hash event)."""
    LINE = "line"
    """A serial line that was not a report."""
    STATUS = "status"
    """Connection or device status: port opened, stream connected, device online/offline."""
    EVENT = "event"
    """Some other cloud event (spark/flash/status, last_reset, …)."""
    PROGRESS = "progress"
    """How far a long read has come (a debug probe reading an image): shown, not kept."""


class Signal(Enum):
    """A status that the verifier and the flash loop act on (never matched as text)."""

    STREAM_CONNECTED = "stream_connected"
    """A streaming transport's (the cloud's) stream is open: from then on nothing the device
    says is missed, so `stamp flash` uploads at that moment."""
    CAME_ONLINE = "came_online"
    """The device (re)connected (Device OS's `spark/status` "online")."""
    WENT_OFFLINE = "went_offline"
    """The device disconnected (`spark/status` "offline")."""


@dataclass(frozen=True)
class Heard:
    """One thing a transport heard, with when."""

    kind: HeardKind
    """What it is."""
    text: str
    """Human summary, e.g. "port /dev/pts/3 opened", "spark/status: online"."""
    at: float
    """The transport clock's time when it was heard."""
    report: Report | None = None
    """The report, for kind REPORT."""
    signal: Signal | None = None
    """What it means to the verifier, for a STATUS that matters (else None)."""


class Transport(Protocol):
    """A device's voice. Implemented by serial, cloud, and used by the simulators' tests."""

    def describe(self) -> str:
        """Where it listens, without secrets (e.g. "serial /dev/ttyACM0 at 115200")."""
        ...

    def listen(self, deadline: float) -> Iterator[Heard]:
        """Yield what is heard until `deadline` (transport clock); raise DeviceUnreachable
        only for a hard failure that waiting cannot fix; retry transient ones inside."""
        ...

    def close(self) -> None:
        """Release the port or connection; idempotent."""
        ...

    def __enter__(self) -> Transport: ...

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None: ...


def monotonic() -> float:
    return time.monotonic()
