"""The one interface every way of hearing a device implements.

A transport is opened, then `listen()` yields `Heard` items until the caller stops
iterating or the deadline passes; `close()` releases the port or connection on every exit
path (use it as a context manager). Progress shown to the user and the timeout message
("port opened, 3 lines received, none was a report") are built from what was heard.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
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


class Note(Enum):
    """What a transport notes of its own (a port opened, a stream dropped, a read's
    progress), as a value: `Heard.values` holds the particulars named here, and the CLI
    has the words (`stamp.cli.heard_words`)."""

    WAITING_FOR_PORT = "waiting_for_port"
    """Serial: the port does not exist yet (`port`)."""
    PORT_OPENED = "port_opened"
    """Serial: the port opened (`port`)."""
    PORT_LOST = "port_lost"
    """Serial: the open port vanished (`port`, `reason`); waiting for it to come back."""
    BOARD_RESET = "board_reset"
    """Serial --reset: EN pulsed through DTR/RTS (`seconds`)."""
    NO_MODEM_LINES = "no_modem_lines"
    """Serial --reset: the port has no DTR/RTS lines to toggle (`port`)."""
    SMP_CONNECTED = "smp_connected"
    """SMP: the transport is connected (`where`)."""
    NO_SMP_ANSWER = "no_smp_answer"
    """SMP: nothing answered yet; asking again."""
    GDB_ATTACHED = "gdb_attached"
    """GDB: connected to the server (`where`)."""
    TARGET_NOT_RUNNING = "target_not_running"
    """GDB: the target was not running (`reply`: the server's stop reply)."""
    CORE_RESUMED = "core_resumed"
    """GDB: the core was halted `ms` milliseconds for the read, then resumed."""
    CORE_NOT_RESUMED = "core_not_resumed"
    """GDB: the core was halted `ms` milliseconds and could not be resumed."""
    NO_BUILD_ID_NOTE = "no_build_id_note"
    """GDB: no build-id note where the ELF puts it (`address`)."""
    IMAGE_READ_BACK = "image_read_back"
    """GDB: the image was read back (`size` bytes in `seconds`, `rate` KiB/s, `digest`)."""
    RECORD_ELSEWHERE = "record_elsewhere"
    """GDB: no valid record at `wanted` (`why`), but edit `edit` at `at`: the layout changed."""
    NO_RECORD_IN_FLASH = "no_record_in_flash"
    """GDB: no valid record at `wanted` (`why`), nor in the `searched` bytes of flash."""
    READING_IMAGE = "reading_image"
    """GDB progress: `done` of `total` bytes of the image read."""
    SEARCHING_FLASH = "searching_flash"
    """GDB progress: `searched` bytes of flash searched for a record."""
    DEVICE_STATE = "device_state"
    """Cloud: the device and whether the cloud believes it online (`device`, `state`)."""
    STREAM_CONNECTED = "stream_connected"
    """Cloud: the event stream is open."""
    STREAM_DROPPED = "stream_dropped"
    """Cloud: the event stream ended or stalled (`reason`); reconnecting."""
    RETRYING = "retrying"
    """Cloud: a request failed (`reason`); trying again."""
    RATE_LIMITED = "rate_limited"
    """Cloud: a 429 (`reason`: how long it waits)."""
    VARIABLE_UNREADABLE = "variable_unreadable"
    """Cloud: the `stamp` variable read failed (`reason`)."""
    NO_VARIABLE = "no_variable"
    """Cloud: the device has no `stamp` variable (offline, or an app without stamp)."""
    NOT_A_REPORT = "not_a_report"
    """Cloud: `source` (an event or the variable) is not a valid report (`reason`)."""
    EMPTY_EVENT = "empty_event"
    """Cloud: the `event` came with no data."""
    EVENT_DISCARDED = "event_discarded"
    """Cloud: an `event` larger than `limit` bytes was skipped."""
    UNNAMED_EVENT_DISCARDED = "unnamed_event_discarded"
    """Cloud: an event larger than `limit` bytes was skipped before its name was heard."""
    IMAGE_STATE = "image_state"
    """SMP report: the active slot (`slot`, `version`, `hash`)."""
    NO_ACTIVE_SLOT = "no_active_slot"
    """SMP report: the device names no active slot."""
    MEMORY_READ = "memory_read"
    """GDB report: the record read from the target's memory (`Heard.report`)."""


@dataclass(frozen=True)
class Heard:
    """One thing a transport heard, with when."""

    kind: HeardKind
    """What it is."""
    text: str
    """What was heard as it came: a serial line, an event ("spark/status: online"), a
    report's source and gist; "" for a `note`."""
    at: float
    """The transport clock's time when it was heard."""
    report: Report | None = None
    """The report, for kind REPORT."""
    signal: Signal | None = None
    """What it means to the verifier, for a STATUS that matters (else None)."""
    note: Note | None = None
    """What the transport noted of its own, when this is not something heard as it came."""
    values: Mapping[str, object] = field(default_factory=dict, hash=False)
    """The note's particulars (a port, a reason, a count), by the names `Note` gives."""

    @classmethod
    def noted(
        cls,
        note: Note,
        at: float,
        *,
        kind: HeardKind = HeardKind.STATUS,
        signal: Signal | None = None,
        report: Report | None = None,
        **values: object,
    ) -> Heard:
        """A note of the transport's own, at `at`, with its particulars."""
        return cls(kind, "", at, report=report, signal=signal, note=note, values=values)

    @property
    def gist(self) -> tuple[object, ...]:
        """What it says, without when: two items with the same gist say the same."""
        return (self.kind, self.text, self.note, tuple(sorted(self.values.items())))


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
