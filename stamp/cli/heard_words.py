"""The words for what a transport heard: its notes (`stamp.device.transport.base.Note`)
filled in with their particulars, and what it heard as it came, unchanged."""

from __future__ import annotations

from stamp.device.report_line import Report
from stamp.device.transport.base import Heard, Note

NOTE_WORDS = {
    Note.WAITING_FOR_PORT: "waiting for {port} to appear",
    Note.PORT_OPENED: "port {port} opened",
    Note.PORT_LOST: "lost {port} ({reason}), waiting for it",
    Note.BOARD_RESET: "reset the board through DTR/RTS (EN pulsed for {seconds:g} s)",
    Note.NO_MODEM_LINES: "could not reset: {port} has no DTR/RTS lines to toggle",
    Note.SMP_CONNECTED: "connected to {where}",
    Note.NO_SMP_ANSWER: "no SMP answer yet",
    Note.GDB_ATTACHED: "attached to {where}",
    Note.TARGET_NOT_RUNNING: "target not running (the server said {reply})",
    Note.CORE_RESUMED: "core halted {ms:.0f} ms while stamp read it, then resumed",
    Note.CORE_NOT_RESUMED: "core halted {ms:.0f} ms; it could not be resumed",
    Note.NO_BUILD_ID_NOTE: "no build-id note at {address}",
    Note.IMAGE_READ_BACK: (
        "read back {size} bytes of the image in {seconds:.2f} s ({rate:.0f} KiB/s), "
        "sha256 {digest:.8}…"
    ),
    Note.RECORD_ELSEWHERE: (
        "no valid stamp record at {wanted} ({why}); the flash holds edit {edit} at {at}: "
        "the layout changed"
    ),
    Note.NO_RECORD_IN_FLASH: (
        "no valid stamp record at {wanted} ({why}), and none in the {searched} bytes of "
        "flash searched: the target runs a build without a stamp record, or none"
    ),
    Note.READING_IMAGE: "reading the image: {done}/{total} bytes",
    Note.SEARCHING_FLASH: "searching flash for a stamp record: {searched} bytes",
    Note.DEVICE_STATE: "device {device} is {state}",
    Note.STREAM_CONNECTED: "event stream connected",
    Note.STREAM_DROPPED: "stream dropped ({reason}), reconnecting",
    Note.RETRYING: "{reason}; retrying",
    Note.RATE_LIMITED: "{reason}",
    Note.VARIABLE_UNREADABLE: "could not read the stamp variable: {reason}",
    Note.NO_VARIABLE: "no stamp variable (offline, or an app without stamp)",
    Note.NOT_A_REPORT: "{source}: not a valid report ({reason})",
    Note.EMPTY_EVENT: "{event}: empty",
    Note.EVENT_DISCARDED: "{event}: discarded, larger than {limit} bytes",
    Note.UNNAMED_EVENT_DISCARDED: "an event: discarded, larger than {limit} bytes",
    Note.IMAGE_STATE: "image state: slot {slot} active, version {version}, hash {hash}",
    Note.NO_ACTIVE_SLOT: "image state: no active slot",
}
"""A template per note; `Heard.values` fills in its names."""


def heard_text(heard: Heard) -> str:
    """What a person reads for `heard`: its note in words, or what was heard as it came."""
    if heard.note is None:
        return heard.text
    if heard.note is Note.MEMORY_READ and heard.report is not None:
        return _memory_read(heard.report)
    return NOTE_WORDS[heard.note].format_map(heard.values)


def _memory_read(report: Report) -> str:
    """What the probe read, e.g. "memory at 0x8000400: edit 7, git 1a2b3c4d"."""
    identity = report.identity
    parts = [f"edit {identity.edit}"] if identity.edit is not None else []
    if identity.git:
        parts.append(f"git {identity.git[:8]}")
    if identity.build_id:
        parts.append(f"build-id {identity.build_id[:8]}…")
    return f"{report.source}: " + ", ".join(parts)
