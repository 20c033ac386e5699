"""The Particle Cloud's HTTP API, as much of it as stamp uses: `CloudClient`.

`CloudClient` lists and looks up devices, reads a variable, starts an OTA update and
opens a device's event stream (read by `stamp.device.transport.cloud`); for a product
(`stamp fleet`) it pages through the product's devices (`ProductCalls`) and opens the
product's stream. Every answer stamp cannot use becomes a StampError that says what to
do: a rejected token, an unknown device or product, a cloud that is down or rate
limiting (a short Retry-After is waited out; with a shared `RequestBudget` every thread
waits), an address that is not the API.

The token goes in the `Authorization: Bearer` header only: never a URL (httpx logs
URLs, not headers), never a message. Text the cloud sends back is scrubbed of it too:
api.particle.io puts `?access_token=…` into its "I didn't recognize that device" answer.
"""

from __future__ import annotations

import json
import logging
import re
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import quote, urlsplit

import httpx

from stamp import __version__
from stamp.closing import Closing
from stamp.device.transport.cloud_devices import DeviceInfo, ProductCalls, device_info

__all__ = ["CloudClient", "DeviceInfo", "RateLimited"]
from stamp.device.transport.rate import RequestBudget
from stamp.errors import (
    AuthError,
    ConfigError,
    DeviceError,
    DeviceUnreachable,
    FlashError,
    FlashRefused,
    StampError,
)

_PASSING_REFUSALS = ("offline", "in progress", "timed out")
"""Words of a 400 answer to an OTA upload that another attempt may not get (the device
was offline, or busy with another update); any other 400 is final."""

log = logging.getLogger("stamp.device.transport.cloud")

IDLE_TIMEOUT = 30.0
"""Seconds without a byte (the cloud sends a keep-alive every ~9 s) before reconnecting."""
MAX_RETRY_WAIT = 30.0
"""Longest Retry-After a plain request waits out before giving up."""
VARIABLE_WAIT = 35.0
"""Seconds a variable read waits: the cloud answers 408 after about 30 s for a device it
believes online that does not answer."""
RATE_LIMIT_RETRIES = 3
BUDGETED_RETRIES = 10
"""429s a request with a shared budget retries: its pause holds every thread back, so the
cloud sees no more requests for each retry than without one."""

REJECTED_TOKEN = (
    "the Particle Cloud rejected the token ({status}): log in again with `particle login` "
    "or set PARTICLE_ACCESS_TOKEN"
)
_BODY_HEADERS = frozenset({"content-encoding", "content-length", "transfer-encoding"})
_TOKEN_CHARS = re.compile(r"[\x21-\x7e]+")
_QUERY_TOKEN = re.compile(r"(access_token=)[^&\s\"']*")


class RateLimited(DeviceUnreachable):
    """The cloud answered 429; `retry_after` seconds is what it asked for."""

    def __init__(self, message: str, retry_after: float) -> None:
        super().__init__(message)
        self.retry_after = retry_after


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
        self._token = token
        self._max_retry_wait = max_retry_wait
        self.budget = budget
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
        if response.status_code == 400 and not _is_token_error(response):
            message = self._message(response)
            said = f"the Particle Cloud refused to flash {filename} to {device_id}: {message}"
            if any(word in message.lower() for word in _PASSING_REFUSALS):
                raise FlashError(said)
            raise FlashRefused(said)  # an invalid file or the wrong platform: final
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
        request = self._http.build_request(
            "GET",
            path,
            headers={"Accept": "text/event-stream", "Cache-Control": "no-cache"},
            timeout=httpx.Timeout(self.timeout, read=idle_timeout),
        )
        if self.budget is not None:
            self.budget.acquire()
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
                raise self._failure(response, device=device_id, product=product)
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
        limit = kwargs.pop("max_bytes", None)
        retries = RATE_LIMIT_RETRIES if self.budget is None else BUDGETED_RETRIES
        for attempt in range(retries + 1):
            if self.budget is not None:
                self.budget.acquire()
            try:
                if limit is None:
                    response = self._http.request(method, path, **kwargs)
                else:
                    response = self._read_bounded(method, path, limit, **kwargs)
            except httpx.TransportError as exc:
                raise self._unreachable(exc) from None
            log.debug("%s %s -> %d", method, path, response.status_code)
            if response.status_code != 429:
                return response
            limited = self._rate_limited(response)
            if attempt == retries or limited.retry_after > self._max_retry_wait:
                raise limited
            log.debug("rate limited: retrying in %.1f s", limited.retry_after)
            if self.budget is not None:
                self.budget.pause(limited.retry_after)  # every thread waits, not only this one
            else:
                time.sleep(limited.retry_after)
        raise AssertionError("unreachable")  # pragma: no cover

    def _read_bounded(self, method: str, path: str, limit: int, **kwargs: Any) -> httpx.Response:
        """A response whose body is read only up to `limit` bytes (ConfigError beyond)."""
        with self._http.stream(method, path, **kwargs) as response:
            body = bytearray()
            for chunk in response.iter_bytes():
                body += chunk
                if len(body) > limit:
                    raise self._not_the_api(f"{path} sent more than {limit} bytes")
        # The body is decoded already: a second Content-Encoding pass would break it.
        headers = [(k, v) for k, v in response.headers.items() if k not in _BODY_HEADERS]
        return httpx.Response(response.status_code, headers=headers, content=bytes(body))

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
                # The cloud repeats its message in `errors`: say each thing once.
                parts.extend(str(e) for e in errors if not any(str(e) in p for p in parts))
        text = "; ".join(parts) or f"HTTP {response.status_code}"
        return self.scrub(text)[:300]

    def _failure(
        self, response: httpx.Response, *, device: str | None = None, product: str | None = None
    ) -> StampError:
        """The StampError for an unexpected answer."""
        status = response.status_code
        message = self._message(response)
        if product is not None and status in (403, 404) and "token" not in message.lower():
            return DeviceError(
                f"no product {product!r} for this Particle account (at {self.host}): check "
                "the product id or slug in the Particle console",
                detail=message,
            )
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

    def _device_info(self, item: Any) -> DeviceInfo:
        try:
            return device_info(item)
        except ValueError as exc:
            raise self._not_the_api(str(exc)) from None

    def _not_the_api(self, what: str) -> ConfigError:
        return ConfigError(
            f"{self.api_url} does not behave like the Particle Cloud API ({what}): "
            "check PARTICLE_API_URL or `api_url` in the config"
        )


def _is_token_error(response: httpx.Response) -> bool:
    """api.particle.io's 400 for a request without a token (`invalid_request`)."""
    try:
        body = response.json()
    except ValueError:
        return False
    return isinstance(body, dict) and body.get("error") == "invalid_request"


def _segment(text: str) -> str:
    """One URL path segment: an id, a name or a variable, quoted."""
    return quote(text, safe="")
