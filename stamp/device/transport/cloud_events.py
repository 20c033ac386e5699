"""What the Particle Cloud's event stream says, and what it means to stamp.

`iter_cloud_events` reads the Server-Sent Events of an open stream
(`CloudClient.open_events`) as `CloudEvent`s, `parse_cloud_event` unwraps the cloud's
JSON envelope of one, and `heard_from_event` says what an event means: `stamp` and
`spark/device/app-hash` events are reports, `spark/status` a status, anything else an
event line. Nothing here opens a connection or keeps state.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime

import httpx
from httpx_sse import EventSource

from stamp.device.report import Report, ReportError, parse_json_report, report_from_object
from stamp.device.transport.base import Heard, HeardKind, Signal

STAMP_EVENT = "stamp"
APP_HASH_EVENT = "spark/device/app-hash"
STATUS_EVENT = "spark/status"
_STATUS_SIGNALS = {"online": Signal.CAME_ONLINE, "offline": Signal.WENT_OFFLINE}
SHOWN_DATA = 120
"""Characters of an event's data shown in the line it is heard as."""


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


def parse_cloud_event(name: str, payload: str) -> CloudEvent:
    """An event from its SSE name and `data:` payload (the cloud's JSON envelope)."""
    try:
        envelope = json.loads(payload)
    except ValueError:
        return CloudEvent(name=name, data=payload)
    if not isinstance(envelope, dict):
        return CloudEvent(name=name, data=payload)
    data = envelope.get("data")
    published = envelope.get("published_at")
    coreid = envelope.get("coreid")
    ttl = envelope.get("ttl")
    return CloudEvent(
        name=name,
        data="" if data is None else data if isinstance(data, str) else json.dumps(data),
        published_at=published if isinstance(published, str) else None,
        coreid=coreid if isinstance(coreid, str) else None,
        ttl=int(ttl) if isinstance(ttl, int | str) and str(ttl).isdigit() else None,
    )


def iter_cloud_events(response: httpx.Response) -> Iterator[CloudEvent]:
    """The events of an open stream (comments and keep-alives skipped)."""
    for sse in EventSource(response).iter_sse():
        if sse.event and sse.event != "message":
            yield parse_cloud_event(sse.event, sse.data)


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
        return Heard(HeardKind.EVENT, f"{event.name}: not a valid report ({exc})", at)
    if event.name == APP_HASH_EVENT and report.identity.app_hash is None:
        return Heard(HeardKind.EVENT, f"{event.name}: empty", at)
    return Heard(HeardKind.REPORT, text, at, report)
