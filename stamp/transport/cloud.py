"""Hearing a device through the Particle Cloud: the REST calls and the event stream.

`CloudClient` is the small part of the Particle Cloud API stamp uses (list, look up,
read a variable, OTA flash, open the event stream). `CloudTransport` is the `Transport`
for `particle:DEVICE`: it reads the `stamp` variable once and then listens to the
device's Server-Sent Events, turning `stamp` and `spark/device/app-hash` events into
reports and everything else into status and event lines.

The stream is read by a background thread that feeds a queue, so `listen()` returns at
its deadline even while a read blocks (the cloud may be silent for ~10 s between
keep-alives); closing the transport shuts the stream's socket to wake that thread.

The token goes in the `Authorization: Bearer` header only: never a URL (httpx logs
URLs, not headers), never a message. Text the cloud sends back is scrubbed of it too:
api.particle.io puts `?access_token=…` into its "I didn't recognize that device" answer.
"""

from __future__ import annotations

import json
import logging
import queue
import re
import socket
import threading
import time
from collections.abc import Generator, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote, urlsplit

import httpx
from httpx_sse import EventSource, SSEError

from stamp import __version__
from stamp.closing import Closing
from stamp.errors import (
    AuthError,
    ConfigError,
    DeviceError,
    DeviceUnreachable,
    FlashError,
    StampError,
)
from stamp.report import Report, ReportError, parse_json_report, report_from_object
from stamp.transport.base import Clock, Heard, HeardKind, monotonic

log = logging.getLogger("stamp.transport.cloud")

STAMP_EVENT = "stamp"
STAMP_VARIABLE = "stamp"
APP_HASH_EVENT = "spark/device/app-hash"
STATUS_EVENT = "spark/status"
IDLE_TIMEOUT = 30.0
"""Seconds without a byte (the cloud sends a keep-alive every ~9 s) before reconnecting."""
RECONNECT_DELAY = 0.5
MAX_RECONNECT_DELAY = 15.0
MAX_RETRY_WAIT = 30.0
"""Longest Retry-After a plain request waits out before giving up."""
RATE_LIMIT_RETRIES = 3
_POLL = 0.25
_STOP_JOIN = 2.0
_SHOWN_DATA = 120

REJECTED_TOKEN = (
    "the Particle Cloud rejected the token ({status}): log in again with `particle login` "
    "or set PARTICLE_ACCESS_TOKEN"
)
_TOKEN_CHARS = re.compile(r"[\x21-\x7e]+")
_QUERY_TOKEN = re.compile(r"(access_token=)[^&\s\"']*")


@dataclass(frozen=True)
class DeviceInfo:
    """A device as the cloud describes it."""

    id: str
    """24 hex digits."""
    name: str | None
    """Its name, None when unnamed."""
    online: bool
    """Connected to the cloud right now."""
    platform_id: int | None = None
    """Particle platform (6 Photon, 12 Argon, …)."""
    last_heard: str | None = None
    """ISO 8601 time the cloud last heard from it."""
    variables: tuple[str, ...] = ()
    """Names of the cloud variables its firmware registered (when the cloud says)."""

    @property
    def label(self) -> str:
        """How to name it to a person: "name (id)" or the id."""
        return f"{self.name} ({self.id})" if self.name else self.id


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


class RateLimited(DeviceUnreachable):
    """The cloud answered 429; `retry_after` seconds is what it asked for."""

    def __init__(self, message: str, retry_after: float) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class CloudClient(Closing):
    """The Particle Cloud API subset stamp uses; one HTTP connection pool; close() it."""

    def __init__(
        self,
        api_url: str,
        token: str,
        *,
        timeout: float = 10.0,
        max_retry_wait: float = MAX_RETRY_WAIT,
    ) -> None:
        if not _TOKEN_CHARS.fullmatch(token):
            raise AuthError(
                "the Particle access token holds spaces or non-ASCII characters, which no "
                "token has: check PARTICLE_ACCESS_TOKEN or log in again with `particle login`"
            )
        self.api_url = api_url.rstrip("/")
        self.host = urlsplit(self.api_url).netloc or self.api_url
        self.timeout = timeout
        self.clock_offset = 0.0
        """Seconds the cloud's clock is ahead of ours, from its last Date header."""
        self._token = token
        self._max_retry_wait = max_retry_wait
        self._http = httpx.Client(
            base_url=self.api_url,
            headers={"Authorization": f"Bearer {token}", "User-Agent": f"stamp/{__version__}"},
            timeout=timeout,
            follow_redirects=False,
        )

    def __repr__(self) -> str:
        return f"CloudClient({self.api_url!r})"

    # -- the API -----------------------------------------------------------------------

    def list_devices(self) -> list[DeviceInfo]:
        """Every device of the account."""
        response = self._request("GET", "/v1/devices")
        if response.status_code != 200:
            raise self._failure(response)
        body = self._json(response)
        if not isinstance(body, list):
            raise self._not_the_api("GET /v1/devices did not return a list")
        return [self._device_info(item) for item in body]

    def resolve(self, device_id_or_name: str) -> DeviceInfo:
        """The device with this id or name; DeviceError when the account has none."""
        response = self._request("GET", f"/v1/devices/{_segment(device_id_or_name)}")
        if response.status_code != 200:
            raise self._failure(response, device=device_id_or_name)
        return self._device_info(self._json(response))

    def get_variable(self, device_id: str, name: str) -> str | None:
        """A cloud variable's value; None when the device is offline or has no such variable."""
        response = self._request("GET", f"/v1/devices/{_segment(device_id)}/{_segment(name)}")
        if response.status_code in (404, 408):  # unknown variable / device did not answer
            log.debug("variable %s of %s: %d", name, device_id, response.status_code)
            return None
        if response.status_code != 200:
            raise self._failure(response, device=device_id)
        body = self._json(response)
        result = body.get("result") if isinstance(body, dict) else None
        if result is None:
            return None
        return result if isinstance(result, str) else json.dumps(result)

    def flash(self, device_id: str, filename: str, data: bytes) -> str:
        """Start an OTA update with a module binary; returns the cloud's status words.

        "Update started" only means the cloud accepted the file: whether the device runs
        it is for the event stream to tell (SPEC section 1).
        """
        response = self._request(
            "PUT",
            f"/v1/devices/{_segment(device_id)}",
            files={"file": (filename, data, "application/octet-stream")},
        )
        if response.status_code == 400:
            raise FlashError(
                f"the Particle Cloud refused to flash {filename} to {device_id}: "
                f"{self._message(response)}"
            )
        if response.status_code != 200:
            raise self._failure(response, device=device_id)
        body = self._json(response)
        status = body.get("status") if isinstance(body, dict) else None
        return status if isinstance(status, str) else "Update started"

    def _note_server_time(self, response: httpx.Response) -> None:
        """Remember how far the cloud's clock (its Date header) is from ours."""
        from email.utils import parsedate_to_datetime

        try:
            server = parsedate_to_datetime(response.headers["date"]).timestamp()
        except (KeyError, TypeError, ValueError, IndexError):
            return
        self.clock_offset = server - time.time()

    @contextmanager
    def open_events(
        self, device_id: str | None, prefix: str = "", *, idle_timeout: float = IDLE_TIMEOUT
    ) -> Iterator[httpx.Response]:
        """The open event stream of one device (or of all, for None).

        Raises before yielding when the cloud refuses it (RateLimited for 429); errors
        while reading the stream are httpx's own (the caller knows it was connected).
        """
        if device_id is None:
            path = "/v1/devices/events"
        else:
            path = f"/v1/devices/{_segment(device_id)}/events"
        if prefix:
            path += "/" + quote(prefix, safe="/")
        request = self._http.build_request(
            "GET",
            path,
            headers={"Accept": "text/event-stream", "Cache-Control": "no-cache"},
            timeout=httpx.Timeout(self.timeout, read=idle_timeout),
        )
        try:
            response = self._http.send(request, stream=True)
        except httpx.TransportError as exc:
            raise self._unreachable(exc) from None
        try:
            log.debug("GET %s -> %d (stream)", path, response.status_code)
            if response.status_code != 200:
                try:
                    response.read()
                except httpx.TransportError as exc:
                    raise self._unreachable(exc) from None
                if response.status_code == 429:
                    raise self._rate_limited(response)
                raise self._failure(response, device=device_id)
            self._note_server_time(response)
            kind = response.headers.get("content-type", "").partition(";")[0].strip()
            if kind != "text/event-stream":
                raise self._not_the_api(f"{path} answered {kind or 'no content type'}")
            yield response
        finally:
            response.close()

    def close(self) -> None:
        self._http.close()

    # -- helpers -----------------------------------------------------------------------

    def scrub(self, text: str) -> str:
        """`text` without the token in it (for text that came from the cloud)."""
        return _QUERY_TOKEN.sub(r"\1…", text.replace(self._token, "…"))

    def _request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """One request; waits out 429 Retry-After a few times; DeviceUnreachable when down."""
        for attempt in range(RATE_LIMIT_RETRIES + 1):
            try:
                response = self._http.request(method, path, **kwargs)
            except httpx.TransportError as exc:
                raise self._unreachable(exc) from None
            log.debug("%s %s -> %d", method, path, response.status_code)
            if response.status_code != 429:
                return response
            limited = self._rate_limited(response)
            if attempt == RATE_LIMIT_RETRIES or limited.retry_after > self._max_retry_wait:
                raise limited
            log.debug("rate limited: retrying in %.1f s", limited.retry_after)
            time.sleep(limited.retry_after)
        raise AssertionError("unreachable")  # pragma: no cover

    def _json(self, response: httpx.Response) -> Any:
        try:
            return response.json()
        except ValueError:
            raise self._not_the_api(f"HTTP {response.status_code} answer is not JSON") from None

    def _message(self, response: httpx.Response) -> str:
        """What the cloud said, in one line, without the token."""
        try:
            body = response.json()
        except ValueError:
            body = None
        parts: list[str] = []
        if isinstance(body, dict):
            for key in ("error_description", "error", "info"):
                value = body.get(key)
                if isinstance(value, str) and value and value not in parts:
                    parts.append(value)
            errors = body.get("errors")
            if isinstance(errors, list):
                parts.extend(str(e) for e in errors if str(e) not in parts)
        text = "; ".join(parts) or f"HTTP {response.status_code}"
        return self.scrub(text)[:300]

    def _failure(self, response: httpx.Response, *, device: str | None = None) -> StampError:
        """The StampError for an unexpected answer."""
        status = response.status_code
        message = self._message(response)
        if status == 401 or (status == 400 and "token" in message.lower()):
            return AuthError(REJECTED_TOKEN.format(status=status), detail=message)
        if device is not None and (
            status == 404 or (status == 403 and "recognize" in message.lower())
        ):
            # api.particle.io answers 403 "I didn't recognize that device name or ID".
            return DeviceError(
                f"no such device {device!r} in this Particle account "
                f"(at {self.host}): check the id or name with `particle list`",
                detail=message,
            )
        if status == 403:
            return AuthError(REJECTED_TOKEN.format(status=status), detail=message)
        if status == 429:
            return self._rate_limited(response)
        if status >= 500:
            return DeviceUnreachable(
                f"the Particle Cloud at {self.host} failed (HTTP {status}): {message}"
            )
        return StampError(f"the Particle Cloud at {self.host} answered HTTP {status}: {message}")

    def _rate_limited(self, response: httpx.Response) -> RateLimited:
        try:
            wait = float(response.headers.get("retry-after", "1"))
        except ValueError:
            wait = 1.0
        wait = max(0.0, wait)
        return RateLimited(
            f"the Particle Cloud at {self.host} is rate limiting requests (429): "
            f"try again in {wait:g} s",
            wait,
        )

    def _unreachable(self, exc: httpx.TransportError) -> DeviceUnreachable:
        reason = self.scrub(str(exc)) or type(exc).__name__
        return DeviceUnreachable(
            f"cannot reach the Particle Cloud at {self.host}: {reason}",
            detail=type(exc).__name__,
        )

    def _not_the_api(self, what: str) -> ConfigError:
        return ConfigError(
            f"{self.api_url} does not behave like the Particle Cloud API ({what}): "
            "check PARTICLE_API_URL or `api_url` in the config"
        )

    def _device_info(self, item: Any) -> DeviceInfo:
        if not isinstance(item, dict) or not isinstance(item.get("id"), str):
            raise self._not_the_api("a device without an id")
        name = item.get("name")
        online = item.get("online", item.get("connected"))
        platform = item.get("platform_id")
        heard = item.get("last_heard")
        variables = item.get("variables")
        return DeviceInfo(
            id=item["id"].lower(),
            name=name if isinstance(name, str) and name else None,
            online=online is True,
            platform_id=platform if isinstance(platform, int) else None,
            last_heard=heard if isinstance(heard, str) else None,
            variables=tuple(variables) if isinstance(variables, dict) else (),
        )


def _segment(text: str) -> str:
    """One URL path segment: an id, a name or a variable, quoted."""
    return quote(text, safe="")


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
    text = f"{event.name}: {data[:_SHOWN_DATA]}"
    if event.name == STATUS_EVENT:
        return Heard(HeardKind.STATUS, text, at)
    try:
        if event.name == STAMP_EVENT:
            report: Report = parse_json_report(data, "cloud event stamp")
        elif event.name == APP_HASH_EVENT:
            report = report_from_object({"app_hash": data}, APP_HASH_EVENT)
        else:
            return Heard(HeardKind.EVENT, text, at)
    except ReportError as exc:
        return Heard(HeardKind.EVENT, f"{event.name}: not a valid report ({exc})", at)
    if event.name == APP_HASH_EVENT and report.app_hash is None:
        return Heard(HeardKind.EVENT, f"{event.name}: empty", at)
    return Heard(HeardKind.REPORT, text, at, report)


@dataclass(frozen=True)
class _Signal:
    """What the reader thread tells listen()."""

    kind: str
    """"connected", "event", "dropped", "unreachable", "limited" or "fatal"."""
    event: CloudEvent | None = None
    """The event, for "event"."""
    reason: str = ""
    """Why, for "dropped", "unreachable" and "limited"."""
    error: StampError | None = None
    """The error to raise in listen(), for "fatal"."""


class _StreamReader(threading.Thread):
    """Reads one device's event stream into a queue, reconnecting with backoff."""

    def __init__(
        self,
        client: CloudClient,
        device_id: str,
        *,
        reconnect_delay: float,
        idle_timeout: float,
    ) -> None:
        super().__init__(name=f"stamp-cloud-events-{device_id[:8]}", daemon=True)
        self.signals: queue.Queue[_Signal] = queue.Queue()
        self._client = client
        self._device_id = device_id
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
            kind = "unreachable"
            try:
                with self._client.open_events(
                    self._device_id, idle_timeout=self._idle_timeout
                ) as response:
                    with self._lock:
                        if self._stopping.is_set():
                            return
                        self._response = response
                    connected = True
                    self.signals.put(_Signal("connected"))
                    for event in iter_cloud_events(response):
                        self.signals.put(_Signal("event", event))
                reason = "the cloud ended the stream"
            except RateLimited as exc:
                kind, reason, wait = "limited", exc.message, exc.retry_after
            except (AuthError, DeviceError, ConfigError) as exc:
                self.signals.put(_Signal("fatal", error=exc))
                return
            except StampError as exc:
                reason = exc.message
            except httpx.ReadTimeout:
                reason = f"nothing heard for {self._idle_timeout:g} s"
            except (httpx.HTTPError, httpx.StreamError, SSEError) as exc:
                reason = self._client.scrub(str(exc)) or type(exc).__name__
            finally:
                with self._lock:
                    self._response = None
            if self._stopping.is_set():
                return
            if connected:
                kind, delay = "dropped", self._reconnect_delay
                wait = delay
            elif kind == "unreachable":
                delay = min(delay * 2, MAX_RECONNECT_DELAY)
            self.signals.put(_Signal(kind, reason=reason))
            self._stopping.wait(wait)

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
        self._reader: _StreamReader | None = None
        self._closed = False

    def describe(self) -> str:
        return f"Particle device {self.device} via {self.client.host}"

    def listen(self, deadline: float) -> Generator[Heard, None, None]:
        """Status, events and reports until `deadline` (transport clock)."""
        info = yield from self._resolve(deadline)
        self.info = info
        state = "online" if info.online else "offline"
        yield Heard(HeardKind.STATUS, f"device {info.label} is {state}", self._clock())
        reader = _StreamReader(
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
                if signal.kind == "event" and signal.event is not None:
                    if self._too_old(signal.event):
                        log.debug("ignored %s published before the start", signal.event.name)
                        continue
                    yield heard_from_event(signal.event, now)
                elif signal.kind == "connected":
                    connections += 1
                    yield Heard(HeardKind.STATUS, "event stream connected", now)
                    # Events during a gap are lost (the cloud does not replay), so the
                    # variable is read again after a reconnect.
                    if self.read_variable and (info.online or connections > 1):
                        yield from self._variable(info.id)
                elif signal.kind == "dropped":
                    yield Heard(
                        HeardKind.STATUS, f"stream dropped ({signal.reason}), reconnecting", now
                    )
                elif signal.kind == "unreachable":
                    unreachable = signal.reason
                    yield Heard(HeardKind.STATUS, f"{signal.reason}; retrying", now)
                elif signal.kind == "limited":
                    yield Heard(HeardKind.STATUS, signal.reason, now)
                elif signal.kind == "fatal" and signal.error is not None:
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
                yield Heard(HeardKind.STATUS, f"{exc.message}; retrying", self._clock())
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

    def _variable(self, device_id: str) -> Iterator[Heard]:
        try:
            value = self.client.get_variable(device_id, STAMP_VARIABLE)
        except DeviceUnreachable as exc:
            yield Heard(
                HeardKind.STATUS, f"could not read the stamp variable: {exc}", self._clock()
            )
            return
        now = self._clock()
        if value is None:
            yield Heard(
                HeardKind.STATUS, "no stamp variable (offline, or an app without stamp)", now
            )
            return
        try:
            report = parse_json_report(value, "cloud variable stamp")
        except ReportError as exc:
            yield Heard(HeardKind.EVENT, f"variable stamp: not a valid report ({exc})", now)
            return
        yield Heard(HeardKind.REPORT, f"variable stamp: {value[:_SHOWN_DATA]}", now, report)

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
