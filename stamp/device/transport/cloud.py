"""The `Transport` for `particle:DEVICE`: hearing a device through the Particle Cloud.

`CloudTransport` resolves the device, reads its `stamp` variable once, then listens to
its event stream and yields what each event means (`stamp.device.transport.cloud_events`),
with status lines for the stream connecting, dropping and reconnecting. The HTTP calls
are `stamp.device.transport.cloud_api.CloudClient`'s.

The stream is read by a background thread that feeds a queue, so `listen()` returns at
its deadline even while a read blocks (the cloud may be silent for ~10 s between
keep-alives); closing the transport shuts the stream's socket to wake that thread.
"""

from __future__ import annotations

import logging
import queue
import socket
import threading
import time
from collections.abc import Generator, Iterator
from contextlib import suppress
from dataclasses import dataclass
from enum import Enum

import httpx

from stamp.closing import Closing
from stamp.device.report_line import ReportError, parse_json_report
from stamp.device.transport.base import Clock, Heard, HeardKind, Note, Signal, monotonic
from stamp.device.transport.cloud_api import IDLE_TIMEOUT, VARIABLE_WAIT, CloudClient
from stamp.device.transport.cloud_events import (
    MAX_EVENT,
    SHOWN_DATA,
    CloudEvent,
    Discarded,
    heard_from_event,
    iter_cloud_events,
)
from stamp.device.transport.cloud_records import DeviceInfo, RateLimited
from stamp.errors import (
    AuthError,
    ConfigError,
    DeviceError,
    DeviceUnreachable,
    StampError,
)

log = logging.getLogger("stamp.device.transport.cloud")

STAMP_VARIABLE = "stamp"
RECONNECT_DELAY = 0.5
MAX_RECONNECT_DELAY = 15.0
_POLL = 0.25
_STOP_JOIN = 2.0


class NewsKind(Enum):
    """What the reader thread tells listen()."""

    CONNECTED = "connected"
    """The stream is open: from now on no event is missed."""
    EVENT = "event"
    """An event arrived (`StreamNews.event`)."""
    DISCARDED = "discarded"
    """An event larger than MAX_EVENT was skipped (its name, as far as heard, in `reason`)."""
    DROPPED = "dropped"
    """An open stream ended or stalled; the reader reconnects."""
    UNREACHABLE = "unreachable"
    """The stream could not be opened; the reader retries with backoff."""
    LIMITED = "limited"
    """The cloud answered 429; the reader waits its Retry-After."""
    FATAL = "fatal"
    """Waiting cannot help (`StreamNews.error`: a rejected token, no such device, …)."""


@dataclass(frozen=True)
class StreamNews:
    """What the reader thread tells listen()."""

    kind: NewsKind
    """Which of the reader's news it is."""
    event: CloudEvent | None = None
    """The event, for EVENT."""
    reason: str = ""
    """Why, for DROPPED, UNREACHABLE and LIMITED."""
    error: StampError | None = None
    """The error to raise in listen(), for FATAL."""


class StreamReader(threading.Thread):
    """Reads one device's event stream (or a product's) into a queue, reconnecting with
    backoff; a bounded queue (`max_queued`) holds the stream back instead of growing."""

    def __init__(
        self,
        client: CloudClient,
        device_id: str | None,
        *,
        reconnect_delay: float,
        idle_timeout: float,
        product: str | None = None,
        max_queued: int = 0,
    ) -> None:
        name = device_id[:8] if device_id else f"product-{product}"
        super().__init__(name=f"stamp-cloud-events-{name}", daemon=True)
        self.signals: queue.Queue[StreamNews] = queue.Queue(max_queued)
        self._client = client
        self._device_id = device_id
        self._product = product
        self._reconnect_delay = reconnect_delay
        self._idle_timeout = idle_timeout
        self._stopping = threading.Event()
        self._lock = threading.Lock()
        self._response: httpx.Response | None = None

    def run(self) -> None:
        delay = self._reconnect_delay
        while not self._stopping.is_set():
            connected = False
            wait = delay
            kind = NewsKind.UNREACHABLE
            try:
                with self._client.open_events(
                    self._device_id, idle_timeout=self._idle_timeout, product=self._product
                ) as response:
                    with self._lock:
                        if self._stopping.is_set():
                            return
                        self._response = response
                    connected = True
                    self._put(StreamNews(NewsKind.CONNECTED))
                    for event in iter_cloud_events(response.iter_raw()):
                        if isinstance(event, Discarded):
                            self._put(StreamNews(NewsKind.DISCARDED, reason=event.name))
                        else:
                            self._put(StreamNews(NewsKind.EVENT, event))
                reason = "the cloud ended the stream"
            except RateLimited as exc:
                kind, reason = NewsKind.LIMITED, exc.message
                wait = max(exc.retry_after, delay)
                delay = min(delay * 2, MAX_RECONNECT_DELAY)
            except (AuthError, DeviceError, ConfigError) as exc:
                self._put(StreamNews(NewsKind.FATAL, error=exc))
                return
            except StampError as exc:
                reason = exc.message
            except httpx.ReadTimeout:
                reason = f"nothing heard for {self._idle_timeout:g} s"
            except (httpx.HTTPError, httpx.StreamError) as exc:
                reason = self._client.scrub(str(exc)) or type(exc).__name__
            except Exception as exc:  # never a dead thread and a silent wait (issue 10)
                log.debug("event stream reader failed", exc_info=True)
                error = DeviceUnreachable(
                    f"stamp could not read the Particle Cloud's event stream ({type(exc).__name__})"
                )
                self._put(StreamNews(NewsKind.FATAL, error=error))
                return
            finally:
                with self._lock:
                    self._response = None
            if self._stopping.is_set():
                return
            if connected:
                kind, delay = NewsKind.DROPPED, self._reconnect_delay
                wait = delay
            elif kind is NewsKind.UNREACHABLE:
                delay = min(delay * 2, MAX_RECONNECT_DELAY)
            self._put(StreamNews(kind, reason=reason))
            self._stopping.wait(wait)

    def _put(self, news: StreamNews) -> None:
        """Queue `news`, waiting while the queue is full, unless stop() is called."""
        while not self._stopping.is_set():
            with suppress(queue.Full):
                self.signals.put(news, timeout=_POLL)
                return

    def stop(self) -> None:
        """Stop reading: wake a blocked read by shutting the socket, then join."""
        self._stopping.set()
        with self._lock:
            response = self._response
        if response is not None:
            stream = response.extensions.get("network_stream")
            sock = stream.get_extra_info("socket") if stream is not None else None
            if isinstance(sock, socket.socket):
                with suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
        if self.is_alive():
            self.join(_STOP_JOIN)
            if self.is_alive():  # still connecting; it exits when the attempt ends
                log.debug("event stream reader still connecting; left to finish")


DATE_SLACK = 1.0
"""Seconds of slack when comparing with the cloud's clock: HTTP dates have whole seconds."""


class CloudTransport(Closing):
    """The Transport for a device on the Particle Cloud (SPEC section 6)."""

    def __init__(
        self,
        client: CloudClient,
        device: str,
        *,
        clock: Clock = monotonic,
        since: float | None = None,
        read_variable: bool = True,
        owns_client: bool = True,
        reconnect_delay: float = RECONNECT_DELAY,
        idle_timeout: float = IDLE_TIMEOUT,
    ) -> None:
        """`since` (a time.time() value) drops events published before it; with
        `owns_client` (the default) close() closes the client too."""
        self.client = client
        self.device = device
        self.since = since
        self.read_variable = read_variable
        self.info: DeviceInfo | None = None
        """The device as resolved by the last listen()."""
        self._clock = clock
        self._owns_client = owns_client
        self._reconnect_delay = reconnect_delay
        self._idle_timeout = idle_timeout
        self._reader: StreamReader | None = None
        self._closed = False

    def describe(self) -> str:
        return f"Particle device {self.device} via {self.client.host}"

    def listen(self, deadline: float) -> Generator[Heard, None, None]:
        """Status, events and reports until `deadline` (transport clock)."""
        # Every exchange of the client ends by then too, whatever the server dribbles;
        # afterwards the client is free again (stamp flash uploads with it).
        previous = self.client.deadline
        self.client.deadline = time.monotonic() + (deadline - self._clock())
        try:
            yield from self._listen(deadline)
        finally:
            self.client.deadline = previous

    def _listen(self, deadline: float) -> Generator[Heard, None, None]:
        """Long because it is the one dispatch over the reader thread's news kinds; each branch
        is a few lines."""
        info = yield from self._resolve(deadline)
        self.info = info
        state = "online" if info.online else "offline"
        yield Heard.noted(Note.DEVICE_STATE, self._clock(), device=info.label, state=state)
        reader = StreamReader(
            self.client,
            info.id,
            reconnect_delay=self._reconnect_delay,
            idle_timeout=self._idle_timeout,
        )
        self._stop_reader()
        self._reader = reader
        reader.start()
        connections = 0
        unreachable = ""
        try:
            while True:
                remaining = deadline - self._clock()
                if remaining <= 0:
                    break
                try:
                    signal = reader.signals.get(timeout=min(remaining, _POLL))
                except queue.Empty:
                    continue
                now = self._clock()
                if signal.kind is NewsKind.EVENT and signal.event is not None:
                    if self._too_old(signal.event):
                        log.debug("ignored %s published before the start", signal.event.name)
                        continue
                    yield heard_from_event(signal.event, now)
                elif signal.kind is NewsKind.CONNECTED:
                    connections += 1
                    yield Heard.noted(Note.STREAM_CONNECTED, now, signal=Signal.STREAM_CONNECTED)
                    # Events during a gap are lost (the cloud does not replay), so the
                    # variable is read again after a reconnect.
                    if self.read_variable and (info.online or connections > 1):
                        yield from self._variable(info.id, deadline)
                elif signal.kind is NewsKind.DISCARDED:
                    named = Note.EVENT_DISCARDED if signal.reason else Note.UNNAMED_EVENT_DISCARDED
                    yield Heard.noted(
                        named, now, kind=HeardKind.EVENT, event=signal.reason, limit=MAX_EVENT
                    )
                elif signal.kind is NewsKind.DROPPED:
                    yield Heard.noted(Note.STREAM_DROPPED, now, reason=signal.reason)
                elif signal.kind is NewsKind.UNREACHABLE:
                    unreachable = signal.reason
                    yield Heard.noted(Note.RETRYING, now, reason=signal.reason)
                elif signal.kind is NewsKind.LIMITED:
                    yield Heard.noted(Note.RATE_LIMITED, now, reason=signal.reason)
                elif signal.kind is NewsKind.FATAL and signal.error is not None:
                    raise signal.error
        finally:
            self._stop_reader()
        if connections == 0 and unreachable:
            raise DeviceUnreachable(f"{unreachable} (until the timeout)")

    def _resolve(self, deadline: float) -> Generator[Heard, None, DeviceInfo]:
        """Look the device up, retrying while the cloud is unreachable until `deadline`."""
        delay = self._reconnect_delay
        while True:
            try:
                return self.client.resolve(self.device)
            except DeviceUnreachable as exc:  # RateLimited too; auth/device errors are final
                wait = exc.retry_after if isinstance(exc, RateLimited) else delay
                if self._clock() + wait >= deadline:
                    raise DeviceUnreachable(f"{exc.message} (until the timeout)") from None
                yield Heard.noted(Note.RETRYING, self._clock(), reason=exc.message)
                time.sleep(wait)
                delay = min(delay * 2, MAX_RECONNECT_DELAY)

    def _too_old(self, event: CloudEvent) -> bool:
        if self.since is None:
            return False
        published = event.published_epoch()
        if published is None:
            return False
        # `since` is our clock, published_at the cloud's. A laptop or VM clock a few
        # seconds ahead would otherwise drop the very reports a flash waits for, so the
        # comparison is made in the cloud's time (its Date header, whole seconds: hence
        # the slack).
        return published < self.since + self.client.clock_offset - DATE_SLACK

    def _variable(self, device_id: str, deadline: float) -> Iterator[Heard]:
        # The cloud may hold a read ~30 s for a silent device: never past our deadline.
        wait = max(_POLL, min(VARIABLE_WAIT, deadline - self._clock()))
        try:
            value = self.client.get_variable(device_id, STAMP_VARIABLE, wait=wait)
        except (DeviceUnreachable, ConfigError) as exc:  # an unusable answer: listen on
            yield Heard.noted(Note.VARIABLE_UNREADABLE, self._clock(), reason=str(exc))
            return
        now = self._clock()
        if value is None:
            yield Heard.noted(Note.NO_VARIABLE, now)
            return
        try:
            report = parse_json_report(value, "cloud variable stamp")
        except ReportError as exc:
            yield Heard.noted(
                Note.NOT_A_REPORT,
                now,
                kind=HeardKind.EVENT,
                source=f"variable {STAMP_VARIABLE}",
                reason=str(exc),
            )
            return
        yield Heard(HeardKind.REPORT, f"variable stamp: {value[:SHOWN_DATA]}", now, report)

    def _stop_reader(self) -> None:
        reader, self._reader = self._reader, None
        if reader is not None:
            reader.stop()

    def close(self) -> None:
        """Stop listening; close the client when this transport owns it. Idempotent."""
        self._stop_reader()
        if self._owns_client and not self._closed:
            self.client.close()
        self._closed = True

    def __repr__(self) -> str:
        return f"CloudTransport({self.device!r}, {self.client!r})"
