"""What the Particle Cloud's event stream says, and what it means to stamp.

`iter_cloud_events` reads the Server-Sent Events of an open stream
(`CloudClient.open_events`) as `CloudEvent`s, `parse_cloud_event` unwraps the cloud's
JSON envelope of one, and `heard_from_event` says what an event means: `stamp` and
`spark/device/app-hash` events are reports, `spark/status` a status, anything else an
event line. Nothing here opens a connection or keeps state.

The stream is split into lines here (by `LineScanner`, never holding more than
MAX_EVENT bytes) rather than by httpx-sse, whose line decoder keeps an unfinished line
without bound: an endless line or endless `data:` lines cost no memory, and the event
they belong to is reported as `Discarded` (issue 10). The envelope's JSON is decoded
defensively; text from the cloud is redacted of the token.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime

from stamp.device.report_line import (
    OVERLONG,
    LineScanner,
    Report,
    ReportError,
    parse_json_report,
    report_from_object,
)
from stamp.device.transport.base import Heard, HeardKind, Note, Signal
from stamp.device.transport.bounded import BadJSON, decode_json
from stamp.redact import redact

STAMP_EVENT = "stamp"
APP_HASH_EVENT = "spark/device/app-hash"
STATUS_EVENT = "spark/status"
_STATUS_SIGNALS = {"online": Signal.CAME_ONLINE, "offline": Signal.WENT_OFFLINE}
SHOWN_DATA = 120
"""Characters of an event's data shown in the line it is heard as."""
MAX_EVENT = 8192
"""Bytes of one event (its name and `data:` lines) kept: the cloud's event data is at most
1,024 bytes, up to 6 times that once JSON-escaped (\\u00XX), and its envelope adds about
150; the rest is margin."""
MAX_TTL = 2**31 - 1


@dataclass(frozen=True)
class CloudEvent:
    """One event from the stream."""

    name: str
    """Event name, e.g. "spark/status"."""
    data: str
    """Its data ("" when none)."""
    published_at: str | None = None
    """ISO 8601 time the cloud stamped on it."""
    coreid: str | None = None
    """The publishing device's id."""
    ttl: int | None = None
    """Its time-to-live in seconds."""

    def published_epoch(self) -> float | None:
        """published_at as a time.time() value; None when missing or unreadable."""
        if not self.published_at:
            return None
        try:
            moment = datetime.fromisoformat(self.published_at.replace("Z", "+00:00"))
        except ValueError:
            return None
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)
        return moment.timestamp()


@dataclass(frozen=True)
class Discarded:
    """An event dropped for being larger than MAX_EVENT bytes (the rest of it is skipped)."""

    name: str
    """Its name, as far as it was heard ("" when not yet)."""


def parse_cloud_event(name: str, payload: str) -> CloudEvent:
    """An event from its SSE name and `data:` payload (the cloud's JSON envelope)."""
    name, payload = redact(name), redact(payload)
    try:
        envelope = decode_json(payload)
    except BadJSON:
        return CloudEvent(name=name, data=payload)
    if not isinstance(envelope, dict):
        return CloudEvent(name=name, data=payload)
    data = envelope.get("data")
    published = envelope.get("published_at")
    coreid = envelope.get("coreid")
    return CloudEvent(
        name=name,
        data="" if data is None else data if isinstance(data, str) else json.dumps(data),
        published_at=published if isinstance(published, str) else None,
        coreid=coreid if isinstance(coreid, str) else None,
        ttl=_ttl(envelope.get("ttl")),
    )


def _ttl(value: object) -> int | None:
    if isinstance(value, str) and value.isdigit() and len(value) <= 10:
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_TTL:
        return None
    return value


def iter_cloud_events(chunks: Iterable[bytes]) -> Iterator[CloudEvent | Discarded]:
    """The events in the raw bytes of a stream (comments and keep-alives skipped), by
    the WHATWG event-stream rules; an event past MAX_EVENT bytes is `Discarded` once."""
    scanner = LineScanner(MAX_EVENT, mark_overlong=True)
    name, data, size, dropped = "", bytearray(), 0, False
    for chunk in chunks:
        for line in scanner.feed(chunk):
            if line is OVERLONG:
                size = MAX_EVENT + 1
            elif not line:  # a blank line ends the event
                if not dropped and name and name != "message":
                    yield parse_cloud_event(name, data[:-1].decode("utf-8", "replace"))
                name, data, size, dropped = "", bytearray(), 0, False
                continue
            elif line.startswith(b":"):  # a comment: keep-alive
                continue
            else:
                field, _, value = line.partition(b":")
                value = value[1:] if value.startswith(b" ") else value
                size += len(line)
                if size <= MAX_EVENT and field == b"event":
                    name = value.decode("utf-8", "replace")
                elif size <= MAX_EVENT and field == b"data":
                    data += value + b"\n"
            if size > MAX_EVENT and not dropped:
                dropped = True
                data = bytearray()
                yield Discarded(redact(name))


def heard_from_event(event: CloudEvent, at: float) -> Heard:
    """What an event means to stamp: a report, a status, or just an event."""
    data = event.data.strip()
    text = f"{event.name}: {data[:SHOWN_DATA]}"
    if event.name == STATUS_EVENT:
        return Heard(HeardKind.STATUS, text, at, signal=_STATUS_SIGNALS.get(data))
    try:
        if event.name == STAMP_EVENT:
            report: Report = parse_json_report(data, "cloud event stamp")
        elif event.name == APP_HASH_EVENT:
            report = report_from_object({"app_hash": data}, APP_HASH_EVENT)
        else:
            return Heard(HeardKind.EVENT, text, at)
    except ReportError as exc:
        return Heard.noted(
            Note.NOT_A_REPORT, at, kind=HeardKind.EVENT, source=event.name, reason=str(exc)
        )
    if event.name == APP_HASH_EVENT and report.identity.app_hash is None:
        return Heard.noted(Note.EMPTY_EVENT, at, kind=HeardKind.EVENT, event=event.name)
    return Heard(HeardKind.REPORT, text, at, report)
