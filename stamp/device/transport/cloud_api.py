"""The Particle Cloud's HTTP API, as much of it as stamp uses: `CloudClient`.

`CloudClient` lists and looks up devices, reads a variable, starts an OTA update and
opens a device's event stream (read by `stamp.device.transport.cloud`); for a product
(`stamp fleet`) it pages through the product's devices (`ProductCalls`) and opens the
product's stream. Every answer stamp cannot use becomes a StampError that says what to
do: a rejected token, an unknown device or product, a cloud that is down or rate
limiting (a short Retry-After is waited out; with a shared `RequestBudget` every thread
waits), an address that is not the API.

The token goes in the `Authorization: Bearer` header only (never a URL: httpx logs
URLs, not headers); text the cloud sends back is scrubbed of it (stamp.redact). What its
error answers mean is `stamp.device.transport.cloud_answers`.

Nothing the server does can hold stamp past its deadline or fill its memory (issue 10):
every exchange is cut off at the overall deadline (`deadline`, set by the transport from
`--timeout`), answers are read up to a size cap, their JSON is decoded defensively, and
429s are retried with an exponential, jittered backoff that never passes the deadline
(stamp.device.transport.bounded).
"""

from __future__ import annotations

import json
import logging
import random
import re
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import quote, urlsplit

import httpx

from stamp import __version__
from stamp.closing import Closing
from stamp.device.transport.bounded import (
    BadJSON,
    Cutter,
    TooLarge,
    cut_at,
    decode_json,
    read_capped,
)
from stamp.device.transport.cloud_answers import (
    answer_message,
    failure,
    is_token_error,
    rate_limited,
    unreachable,
)
from stamp.device.transport.cloud_devices import ProductCalls
from stamp.device.transport.cloud_records import Answer, DeviceInfo, RateLimited, device_info
from stamp.device.transport.rate import RequestBudget
from stamp.errors import (
    AuthError,
    ConfigError,
    DeviceUnreachable,
    FlashError,
    FlashRefused,
    StampError,
)
from stamp.redact import add_secret, redact

_PASSING_REFUSALS = ("offline", "in progress", "timed out")
"""A 400 to an OTA upload with these words may pass (device offline or busy); others are final."""

log = logging.getLogger("stamp.device.transport.cloud")

IDLE_TIMEOUT = 30.0
"""Seconds without a byte (the cloud sends a keep-alive every ~9 s) before reconnecting."""
MAX_RETRY_WAIT = 30.0
"""Longest Retry-After a plain request waits out before giving up."""
VARIABLE_WAIT = 35.0
"""Seconds a variable read waits: the cloud answers 408 after about 30 s for a device it
believes online that does not answer."""
RATE_LIMIT_RETRIES = 3
"""429s retried by a plain request before it gives up."""
BUDGETED_RETRIES = 10
"""429s retried with a shared budget: its pause holds every thread back (no more load)."""
REQUEST_BUDGET = 60.0
"""Longest whole exchange (connect to last byte) when no overall deadline is set."""
MAX_ANSWER = 64 * 1024
"""Cap on one answer: a device record, a variable or an error is a few KB."""
MAX_LIST_ANSWER = 8 * 1024 * 1024
"""Cap on the device list (about 1 KB per device)."""

_TOKEN_CHARS = re.compile(r"[\x21-\x7e]+")


__all__ = ["CloudClient", "DeviceInfo", "RateLimited"]


class CloudClient(ProductCalls, Closing):
    """The Particle Cloud API subset stamp uses; one HTTP connection pool; close() it."""

    def __init__(
        self,
        api_url: str,
        token: str,
        *,
        timeout: float = 10.0,
        max_retry_wait: float = MAX_RETRY_WAIT,
        budget: RequestBudget | None = None,
    ) -> None:
        """`budget` (shared by every thread using this client) paces the requests and
        pauses them all after a 429; without one a 429 is waited out per request."""
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
        self.deadline: float | None = None
        """time.monotonic() after which no exchange may go on (None: REQUEST_BUDGET each)."""
        add_secret(token)
        self._max_retry_wait = max_retry_wait
        self._rng = random.Random()
        self.budget = budget
        self._http = httpx.Client(
            base_url=self.api_url,
            headers={
                "Authorization": f"Bearer {token}",
                "User-Agent": f"stamp/{__version__}",
                "Accept-Encoding": "identity",  # a capped body is the bytes on the wire
            },
            timeout=timeout,
            follow_redirects=False,
            # A new connection per exchange: the deadline cuts the socket it learns at
            # connect (bounded.Cutter), which a reused connection would not announce.
            limits=httpx.Limits(max_keepalive_connections=0),
        )

    def __repr__(self) -> str:
        return f"CloudClient({self.api_url!r})"

    # -- the API -----------------------------------------------------------------------

    def list_devices(self) -> list[DeviceInfo]:
        """Every device of the account."""
        response = self._request("GET", "/v1/devices", limit=MAX_LIST_ANSWER)
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

    def get_variable(self, device_id: str, name: str, *, wait: float = VARIABLE_WAIT) -> str | None:
        """A cloud variable's value; None when the device is offline or has no such variable.

        The cloud waits up to about 30 s for a device it believes online before its 408,
        longer than the other calls' timeout: this read waits `wait` seconds for it.
        """
        path = f"/v1/devices/{_segment(device_id)}/{_segment(name)}"
        try:
            response = self._request("GET", path, timeout=httpx.Timeout(self.timeout, read=wait))
        except DeviceUnreachable as exc:
            if exc.detail != "ReadTimeout":
                raise
            raise DeviceUnreachable(
                f"the Particle Cloud gave no answer within {wait:.3g} s (it waits about 30 s "
                "for a device it believes online that does not answer)",
                detail=exc.detail,
            ) from None
        if response.status_code in (404, 408):  # unknown variable / device did not answer
            log.debug("variable %s of %s: %d", name, device_id, response.status_code)
            return None
        if response.status_code != 200:
            raise self._failure(response, device=device_id)
        body = self._json(response)
        result = body.get("result") if isinstance(body, dict) else None
        if result is None:
            return None
        return self.scrub(result if isinstance(result, str) else json.dumps(result))

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
        if response.status_code == 400 and not is_token_error(response):
            message = answer_message(response)
            said = f"the Particle Cloud refused to flash {filename} to {device_id}: {message}"
            if any(word in message.lower() for word in _PASSING_REFUSALS):
                raise FlashError(said)
            raise FlashRefused(said)  # an invalid file or the wrong platform: final
        if response.status_code != 200:
            raise self._failure(response, device=device_id)
        body = self._json(response)
        status = body.get("status") if isinstance(body, dict) else None
        return status if isinstance(status, str) else "Update started"

    def _note_server_time(self, response: httpx.Response | Answer) -> None:
        """Remember how far the cloud's clock (its Date header) is from ours."""
        from email.utils import parsedate_to_datetime

        try:
            server = parsedate_to_datetime(response.headers["date"]).timestamp()
        except (KeyError, TypeError, ValueError, IndexError, OverflowError):
            return
        self.clock_offset = server - time.time()

    @contextmanager
    def open_events(
        self,
        device_id: str | None,
        prefix: str = "",
        *,
        idle_timeout: float = IDLE_TIMEOUT,
        product: str | None = None,
    ) -> Iterator[httpx.Response]:
        """The open event stream of one device (or of all, for None; of a product's).

        Raises before yielding when the cloud refuses it (RateLimited for 429); errors
        while reading the stream are httpx's own (the caller knows it was connected).
        """
        if product is not None:
            path = f"/v1/products/{_segment(product)}/events"
        elif device_id is None:
            path = "/v1/devices/events"
        else:
            path = f"/v1/devices/{_segment(device_id)}/events"
        if prefix:
            path += "/" + quote(prefix, safe="/")
        deadline = self._exchange_deadline()
        request = self._http.build_request(
            "GET",
            path,
            headers={"Accept": "text/event-stream", "Cache-Control": "no-cache"},
            timeout=httpx.Timeout(self._per_read(deadline), read=idle_timeout),
        )
        if self.budget is not None:
            self.budget.acquire()
        with self._sent(request, deadline) as (response, cutter):
            log.debug("GET %s -> %d (stream)", path, response.status_code)
            if response.status_code != 200:
                answer = self._read(response, "GET", path, MAX_ANSWER, cutter)
                if answer.status_code == 429:
                    raise self._rate_limited(answer)
                raise self._failure(answer, device=device_id, product=product)
            self._note_server_time(response)
            kind = response.headers.get("content-type", "").partition(";")[0].strip()
            if kind != "text/event-stream":
                raise self._not_the_api(f"{path} answered {kind or 'no content type'}")
            yield response

    def close(self) -> None:
        self._http.close()

    # -- helpers -----------------------------------------------------------------------

    @staticmethod
    def scrub(text: str) -> str:
        """`text` without the token in it (for text that came from the cloud)."""
        return redact(text)

    def _request(self, method: str, path: str, *, limit: int = MAX_ANSWER, **kwargs: Any) -> Answer:
        """One exchange; 429s retried with backoff within the deadline; DeviceUnreachable
        when down, ConfigError for an answer past `limit` bytes."""
        retries = RATE_LIMIT_RETRIES if self.budget is None else BUDGETED_RETRIES
        for attempt in range(retries + 1):
            if self.budget is not None:
                self.budget.acquire()
            answer = self._exchange(method, path, limit, **kwargs)
            if answer.status_code != 429:
                return answer
            limited = self._rate_limited(answer, attempt)
            if attempt == retries or not self._can_wait(limited.retry_after):
                raise limited
            log.debug("rate limited: retrying in %.1f s", limited.retry_after)
            if self.budget is not None:
                self.budget.pause(limited.retry_after)  # every thread waits, not only this one
            else:
                time.sleep(limited.retry_after)
        raise AssertionError("unreachable")  # pragma: no cover

    def _exchange(self, method: str, path: str, limit: int, **kwargs: Any) -> Answer:
        deadline = self._exchange_deadline()
        per_read = self._per_read(deadline)
        asked = kwargs.pop("timeout", None)  # a longer read (the variable's 408 wait)
        timeout = httpx.Timeout(per_read, read=asked.read) if asked is not None else per_read
        request = self._http.build_request(method, path, timeout=timeout, **kwargs)
        with self._sent(request, deadline) as (response, cutter):
            answer = self._read(response, method, path, limit, cutter)
        log.debug("%s %s -> %d", method, path, answer.status_code)
        return answer

    @contextmanager
    def _sent(
        self, request: httpx.Request, deadline: float
    ) -> Iterator[tuple[httpx.Response, Cutter]]:
        """`request` sent, its answer streaming, the whole exchange cut at `deadline`; the
        response is closed on every exit path."""
        with cut_at(request, deadline) as cutter:
            try:
                response = self._http.send(request, stream=True)
            except httpx.TransportError as exc:
                raise self._unreachable(exc, late=cutter.fired) from None
            try:
                yield response, cutter
            finally:
                response.close()

    def _read(
        self, response: httpx.Response, method: str, path: str, limit: int, cutter: Cutter
    ) -> Answer:
        encoding = response.headers.get("content-encoding", "identity").strip().lower()
        if encoding not in ("", "identity"):
            raise self._not_the_api(f"{method} {path} answered in {encoding!r} encoding")
        try:
            body = read_capped(response, limit)
        except TooLarge:
            usual = (
                "a device list is about 1 KB per device"
                if path.rstrip("/").endswith("/devices")
                else "a device record is a few KB"
            )
            raise self._not_the_api(
                f"the answer to {method} {path} is larger than {limit // 1024} KiB, where {usual}"
            ) from None
        except httpx.TransportError as exc:
            raise self._unreachable(exc, late=cutter.fired) from None
        return Answer(response.status_code, response.headers, body)

    def _exchange_deadline(self) -> float:
        """When the next exchange must be over (time.monotonic()); DeviceUnreachable if now."""
        now = time.monotonic()
        deadline = now + REQUEST_BUDGET if self.deadline is None else self.deadline
        if deadline <= now:
            raise DeviceUnreachable(
                f"no answer from the Particle Cloud at {self.host} before the timeout"
            )
        return deadline

    def _per_read(self, deadline: float) -> float:
        return max(0.01, min(self.timeout, deadline - time.monotonic()))

    def _can_wait(self, seconds: float) -> bool:
        if seconds > self._max_retry_wait:
            return False
        return self.deadline is None or time.monotonic() + seconds < self.deadline

    def _json(self, response: Answer) -> Any:
        try:
            return decode_json(response.content)
        except BadJSON as exc:
            raise self._not_the_api(
                f"HTTP {response.status_code} answer is not usable JSON: {exc}"
            ) from None

    def _failure(
        self, response: Answer, *, device: str | None = None, product: str | None = None
    ) -> StampError:
        """The StampError for an unexpected answer (429: the rate limit, with its wait)."""
        if response.status_code == 429:
            return self._rate_limited(response)
        return failure(response, self.host, device=device, product=product)

    def _rate_limited(self, response: Answer, attempt: int = 0) -> RateLimited:
        return rate_limited(response, self.host, attempt, cap=self._max_retry_wait, rng=self._rng)

    def _unreachable(self, exc: httpx.TransportError, *, late: bool = False) -> DeviceUnreachable:
        return unreachable(exc, self.host, late=late)

    def _not_the_api(self, what: str) -> ConfigError:
        return ConfigError(
            f"{self.api_url} does not behave like the Particle Cloud API ({what}): "
            "check PARTICLE_API_URL or `api_url` in the config"
        )

    def _device_info(self, item: Any) -> DeviceInfo:
        info = device_info(item)
        if info is None:
            raise self._not_the_api("a device without an id")
        return info


def _segment(text: str) -> str:
    """One URL path segment: an id, a name or a variable, quoted."""
    return quote(text, safe="")
