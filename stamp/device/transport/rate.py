"""Staying inside the Particle Cloud's request limit: `RequestBudget`.

Particle documents one limit for its API: 10,000 requests per 5 minutes per IP address,
answered with HTTP 429 beyond it (docs.particle.io, "Cloud API rate limits"). One device's
`stamp verify` is nowhere near it; `stamp fleet` reading the `stamp` variable of
thousands of devices would be. A token bucket shared by every thread of one client keeps
under the limit in any 5-minute window (the burst plus the refill over 300 s never
exceeds 10,000), and a 429's Retry-After pauses every thread, not only the one that was
refused. Nothing here sleeps on its own clock: `clock` and `sleep` are passed in.

Libraries considered: pyrate-limiter and limits do token buckets, but neither pauses all
callers for a server's Retry-After, and both would be a new dependency for forty lines.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

PARTICLE_REQUESTS = 10_000
"""Requests Particle allows per window and IP address."""
PARTICLE_WINDOW = 300.0
"""The window, in seconds (5 minutes)."""
BURST = 100
"""Requests that may go out at once before the steady rate applies."""


class RequestBudget:
    """A token bucket for API requests, shared by threads; `pause` after a 429."""

    def __init__(
        self,
        requests: int = PARTICLE_REQUESTS,
        per: float = PARTICLE_WINDOW,
        *,
        burst: int = BURST,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if not 0 < burst < requests or per <= 0:
            raise ValueError("need 0 < burst < requests and per > 0")
        self.rate = (requests - burst) / per
        """Tokens added per second."""
        self.burst = burst
        self.limited = 0
        """429 answers seen (each paused every thread)."""
        self.waited = 0.0
        """Seconds threads spent waiting for a token or a pause, summed."""
        self._tokens = float(burst)
        self._clock = clock
        self._sleep = sleep
        self._updated = clock()
        self._paused_until = 0.0
        self._lock = threading.Lock()

    def acquire(self) -> None:
        """Wait until one more request may be sent, then take its token."""
        while True:
            with self._lock:
                now = self._clock()
                self._tokens = min(self.burst, self._tokens + (now - self._updated) * self.rate)
                self._updated = now
                if now >= self._paused_until and self._tokens >= 1.0:
                    self._tokens -= 1.0
                    return
                wait = max(self._paused_until - now, (1.0 - self._tokens) / self.rate, 0.001)
                self.waited += wait
            self._sleep(wait)

    def pause(self, seconds: float) -> None:
        """The cloud answered 429: no thread sends anything for `seconds`."""
        with self._lock:
            self.limited += 1
            self._paused_until = max(self._paused_until, self._clock() + max(0.0, seconds))
