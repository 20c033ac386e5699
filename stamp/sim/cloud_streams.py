"""The simulated cloud's event streams: SSE frames and the queue of each open stream.

`sse_frame` renders an event byte for byte as api.particle.io sends it, and a
`Subscriber` queues frames for one open stream until its HTTP handler writes them,
cutting off a reader that falls too far behind as the real cloud does. Devices publish
from threads; the HTTP handler runs on an event loop, so a subscriber calls its `waker`
(which hands the news to the loop) when its queue stops being empty or the stream ends.

Events are rendered to their SSE bytes once and handed to every matching subscriber, so
one burst from 10,000 devices costs one `json.dumps` per event however many listen.
"""

from __future__ import annotations

import json
import logging
import threading
from collections import deque
from collections.abc import Callable
from datetime import UTC, datetime
from enum import StrEnum

log = logging.getLogger("stamp.sim.cloud")

EVENT_TTL = 60
SUBSCRIBER_LIMIT = 10_000
"""Frames a stream may fall behind before the cloud cuts it off as too slow."""
BLOCKING_PUBLISH_TIMEOUT = 10.0


def iso8601(epoch: float) -> str:
    """The cloud's timestamp format: UTC, milliseconds, a `Z`."""
    moment = datetime.fromtimestamp(epoch, UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def sse_frame(name: str, data: str, coreid: str, published_at: str, ttl: int = EVENT_TTL) -> bytes:
    """One event on the wire, byte for byte what api.particle.io sends."""
    body = json.dumps(
        {"data": data, "ttl": ttl, "published_at": published_at, "coreid": coreid},
        separators=(",", ":"),
    )
    # json.dumps escapes newlines, so a data line can never break the framing.
    return f"event: {name}\ndata: {body}\n\n".encode()


class StreamEnd(StrEnum):
    """Why a subscriber's stream ends."""

    CLOSE = "close"
    """The simulator shuts down: end the response cleanly."""
    DROP = "drop"
    """Cut the connection without a clean end (a network drop, or a too slow reader)."""


class Subscriber:
    """One open event stream: frames queued for its HTTP handler to write."""

    def __init__(
        self,
        device_id: str | None,
        prefix: str,
        limit: int,
        *,
        owner: str | None = None,
        product_id: int | None = None,
    ) -> None:
        self.device_id = device_id
        self.prefix = prefix
        self.owner = owner
        """Only this account's devices (None: any)."""
        self.product_id = product_id
        """Only this product's devices (None: any)."""
        self._limit = limit
        self._frames: deque[bytes] = deque()
        self._cond = threading.Condition()
        self._end: StreamEnd | None = None
        self._waker: Callable[[], None] | None = None

    def wants(self, device_id: str, name: str, owner: str, product_id: int | None) -> bool:
        return (
            (self.device_id is None or self.device_id == device_id)
            and (self.owner is None or self.owner == owner)
            and (self.product_id is None or self.product_id == product_id)
            and name.startswith(self.prefix)
        )

    def set_waker(self, waker: Callable[[], None]) -> None:
        """Call `waker` (from any thread) whenever there is something new to take."""
        with self._cond:
            self._waker = waker
            pending = bool(self._frames) or self._end is not None
        if pending:
            waker()

    def _wake(self) -> None:
        if self._waker is not None:
            self._waker()

    def offer(self, frame: bytes, *, block: bool) -> None:
        """Queue a frame; a full queue drops the stream, or waits when `block`."""
        with self._cond:
            if self._end is not None:
                return
            if len(self._frames) >= self._limit:
                waited = block and self._cond.wait_for(
                    lambda: self._end is not None or len(self._frames) < self._limit,
                    BLOCKING_PUBLISH_TIMEOUT,
                )
                if not waited:
                    log.debug("event stream fell %d events behind: dropping it", self._limit)
                    self._end = StreamEnd.DROP
                    self._cond.notify_all()
                    self._wake()
                    return
                if self._end is not None:
                    return
            self._frames.append(frame)
            self._cond.notify_all()
            if len(self._frames) == 1:
                self._wake()

    def end(self, how: StreamEnd) -> None:
        with self._cond:
            if self._end is None:
                self._end = how
            self._cond.notify_all()
            self._wake()

    def take(self, timeout: float) -> tuple[bytes, StreamEnd | None]:
        """Everything queued (b"" after `timeout` with nothing), and the end if it came."""
        with self._cond:
            self._cond.wait_for(lambda: bool(self._frames) or self._end is not None, timeout)
            batch = b"".join(self._frames)
            self._frames.clear()
            self._cond.notify_all()
            return batch, self._end


class Hub:
    """Every open stream of one simulated cloud, and the order events reach them in."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._lock = threading.Lock()
        self._publish_lock = threading.Lock()
        self._subscribers: list[Subscriber] = []
        self._closed = False

    def add(self, sub: Subscriber) -> Subscriber:
        with self._lock:
            if self._closed:
                sub.end(StreamEnd.CLOSE)
            else:
                self._subscribers.append(sub)
        return sub

    def remove(self, sub: Subscriber) -> None:
        with self._lock:
            if sub in self._subscribers:
                self._subscribers.remove(sub)

    def count(self) -> int:
        with self._lock:
            return len(self._subscribers)

    def offer(self, frame: bytes, wants: Callable[[Subscriber], bool], *, block: bool) -> None:
        """Hand `frame` to every stream that `wants` it."""
        with self._lock:
            targets = [sub for sub in self._subscribers if wants(sub)]
        if not targets:
            return
        with self._publish_lock:  # every stream sees the events in the same order
            for sub in targets:
                sub.offer(frame, block=block)

    def end_all(self, how: StreamEnd) -> int:
        """End every open stream (StreamEnd.DROP or CLOSE); returns how many."""
        with self._lock:
            subs = list(self._subscribers)
            self._closed = self._closed or how is StreamEnd.CLOSE
        for sub in subs:
            sub.end(how)
        return len(subs)
