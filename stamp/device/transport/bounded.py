"""Bounded reads from a server stamp does not control: time, size and JSON depth.

httpx bounds each socket operation (connect, one read) but not a whole exchange: a
server that sends one byte every few seconds (slow-loris) keeps a request alive forever,
and a body or an event line that never ends grows without limit (issue 10). So:

- `cut_at(deadline)` gives a request a `trace` extension (httpcore's documented hook) that
  learns the connection's socket as soon as it is open, and a timer that shuts that socket
  down at the deadline; a read then fails at once, whatever the server dribbles.
- `read_capped` reads a streamed body up to a size cap, never more.
- `decode_json` turns every way outside JSON can fail to decode (invalid, 100,000-deep
  nesting, a 5,000-digit number) into one `BadJSON`.
- `retry_after` reads a Retry-After header (seconds or an HTTP date) and `backoff` gives
  the exponential, jittered wait built on it.

httpx-sse's line decoder was considered for the event stream but holds an unfinished line
without bound, so stamp.device.transport.cloud_events splits the stream itself with
`stamp.device.report_line.LineScanner`.
"""

from __future__ import annotations

import json
import math
import random
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from email.utils import parsedate_to_datetime
from typing import Any

import httpx

MIN_RETRY_WAIT = 1.0
"""The shortest wait after a 429, whatever Retry-After says (0, negative, nan)."""
DEFAULT_RETRY_WAIT = 2.0
"""The wait when a 429 says nothing usable."""
JITTER = 0.25
"""Up to this fraction is added to each wait, so clients do not retry in step."""


class TooLarge(Exception):
    """A body went past its cap."""


class BadJSON(ValueError):
    """Outside JSON that cannot be decoded (invalid, too deep, numbers too long)."""


class Cutter:
    """Shuts a request's socket down at a deadline (time.monotonic() value)."""

    def __init__(self, deadline: float) -> None:
        self.deadline = deadline
        self.fired = False
        """The deadline passed while the request was still running."""
        self._lock = threading.Lock()
        self._socket: socket.socket | None = None
        self._timer = threading.Timer(max(0.0, deadline - time.monotonic()), self._cut)
        self._timer.daemon = True

    def trace(self, name: str, info: dict[str, Any]) -> None:
        """httpcore's trace hook: note the socket of a new connection."""
        if name != "connection.connect_tcp.complete":
            return
        stream = info.get("return_value")
        sock = stream.get_extra_info("socket") if stream is not None else None
        if isinstance(sock, socket.socket):
            with self._lock:
                self._socket = sock
                late = self.fired
            if late:
                self._shutdown(sock)

    def _cut(self) -> None:
        with self._lock:
            self.fired = True
            sock = self._socket
        if sock is not None:
            self._shutdown(sock)

    @staticmethod
    def _shutdown(sock: socket.socket) -> None:
        with suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)

    def start(self) -> None:
        self._timer.start()

    def cancel(self) -> None:
        self._timer.cancel()


@contextmanager
def cut_at(request: httpx.Request, deadline: float) -> Iterator[Cutter]:
    """While inside, `request`'s connection is shut down once `deadline` passes."""
    cutter = Cutter(deadline)
    request.extensions["trace"] = cutter.trace
    cutter.start()
    try:
        yield cutter
    finally:
        cutter.cancel()


def read_capped(response: httpx.Response, limit: int) -> bytes:
    """The body of a streamed response; TooLarge past `limit` bytes (nothing more is read)."""
    declared = response.headers.get("content-length", "")
    if declared.isdigit() and len(declared) < 20 and int(declared) > limit:
        raise TooLarge(declared)
    body = bytearray()
    for chunk in response.iter_raw():
        body += chunk
        if len(body) > limit:
            raise TooLarge(str(len(body)))
    return bytes(body)


def decode_json(data: bytes | str) -> Any:
    """JSON from outside; BadJSON however it fails (never RecursionError or a bare ValueError)."""
    try:
        return json.loads(data)
    except RecursionError:
        raise BadJSON("nested too deeply") from None
    except ValueError as exc:  # JSONDecodeError, UnicodeDecodeError, an over-long integer
        raise BadJSON(str(exc).split(";")[0][:120]) from None


def retry_after(value: str | None, *, now: float | None = None) -> float | None:
    """Seconds a Retry-After header asks for (delta-seconds or HTTP date); None when it is
    missing or unusable (nan, inf, garbage). RFC 9110 section 10.2.3."""
    if not value:
        return None
    text = value.strip()
    try:
        seconds = float(text)
    except ValueError:
        try:
            moment = parsedate_to_datetime(text).timestamp()
        except (TypeError, ValueError, IndexError, OverflowError):
            return None
        seconds = moment - (time.time() if now is None else now)
    if not math.isfinite(seconds):
        return None
    return max(0.0, seconds)


def backoff(asked: float | None, attempt: int, *, cap: float, rng: random.Random) -> float:
    """The wait before retry number `attempt` (0 first): at least what the server asked,
    at least MIN_RETRY_WAIT doubled per attempt, plus up to JITTER of it, at most `cap`."""
    floor = min(cap, MIN_RETRY_WAIT * 2.0**attempt)
    wait = max(floor, DEFAULT_RETRY_WAIT if asked is None else asked)
    return min(cap, wait) * (1 + JITTER * rng.random())
