"""`stamp flash`: flash a build, prove the device runs it, and flash again when it does not.

SPEC section 1 is why this exists: `particle flash` says "Flash success!" once the cloud
accepted the upload, the cloud's `spark/flash/status` says "success" once the transfer
started, and a device that rebooted into its old app says nothing at all. So a flash
counts only when the device itself reports the build (`stamp.device.verify`), and an attempt
that ends in a mismatch or in silence is repeated, up to `retries` more times.

The file is checked against its manifest first (`stamp.device.flash_image`), and a `Flasher`
(`stamp.device.flashers`) puts it on the device: an OTA update through the Particle Cloud, or
the device's own `flash_command`. Here is the loop of attempts around them.

Silence after an OTA has a meaning (SPEC section 1): Device OS publishes
`spark/device/app-hash` as soon as it reconnects when the app changed, and nothing when it
did not. So once the device is back online, an attempt waits `settle` more seconds for a
report and then ends, instead of waiting out the whole timeout.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime
from typing import TYPE_CHECKING, Any

from stamp.cli.output import Progress
from stamp.cli.watch import Watch
from stamp.cli.words import verdict_message
from stamp.device.transport.base import STREAM_CONNECTED, Clock, Heard, HeardKind, monotonic
from stamp.device.verify import CAME_ONLINE, History, Verdict, VerdictStatus, verify
from stamp.errors import FlashError

if TYPE_CHECKING:
    from stamp.device.flash_image import FlashImage
    from stamp.device.flashers import Flasher

DEFAULT_RETRIES = 2
DEFAULT_TIMEOUT = 60.0
"""Seconds one attempt may take from the start of the upload (or from the end of the
flash command) to a verdict."""
DEFAULT_SETTLE = 15.0
"""Seconds to wait for a report after the device came back online from an OTA."""
"""The status `stamp.device.transport.cloud.CloudTransport` yields when its event stream opens."""
FLASH_FAILED = "flash_failed"
"""The `status` of `stamp flash --json` when the last attempt could not flash at all."""


# --- attempts -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Attempt:
    """One flash and what the device said after it."""

    number: int
    """1 for the first."""
    verdict: Verdict | None
    """What verification found; None when the flash itself failed."""
    flash_error: str | None
    """Why flashing failed or did not happen (the command's exit status, a refused upload)."""
    elapsed: float
    """Seconds the attempt took, flashing included."""

    @property
    def status(self) -> VerdictStatus:
        """The verdict's status; NO_REPORT when there is none."""
        return self.verdict.status if self.verdict else VerdictStatus.NO_REPORT

    def summary(self, *, now: datetime | None = None) -> str:
        """One line: the verdict, or why the flash failed."""
        if self.verdict is None:
            return f"FLASH FAILED: {self.flash_error}"
        verdict = self.verdict
        if verdict.status is VerdictStatus.NO_REPORT and verdict.heard.explanation:
            text = f"NO REPORT: {verdict.heard.explanation}"
        else:
            text = verdict_message(verdict, now=now)
        return f"{text} ({self.flash_error})" if self.flash_error else text

    def to_json(self, *, now: datetime | None = None) -> dict[str, Any]:
        return {
            "attempt": self.number,
            "flash_error": self.flash_error,
            "verdict": self.verdict.to_json(now=now) if self.verdict else None,
            "elapsed": round(self.elapsed, 3),
        }


@dataclass(frozen=True)
class FlashResult:
    """Every attempt of one `stamp flash`, the last one deciding."""

    attempts: tuple[Attempt, ...]
    """In order; at least one."""
    retries: int
    """How many attempts after the first were allowed."""

    @property
    def final(self) -> Attempt:
        return self.attempts[-1]

    @property
    def verdict(self) -> Verdict | None:
        """The last attempt's verdict; None when its flash failed."""
        return self.final.verdict

    @property
    def status(self) -> str:
        """The verdict's status value, or "flash_failed"."""
        return self.verdict.status.value if self.verdict else FLASH_FAILED

    def to_json(self, *, now: datetime | None = None) -> dict[str, Any]:
        """The record of `stamp flash --json`."""
        return {
            "status": self.status,
            "message": self.final.summary(now=now),
            "retries": self.retries,
            "attempts": [a.to_json(now=now) for a in self.attempts],
            "verdict": self.verdict.to_json(now=now) if self.verdict else None,
        }


def flash_and_verify(
    flasher: Flasher,
    image: FlashImage,
    history: History,
    *,
    retries: int = DEFAULT_RETRIES,
    timeout: float = DEFAULT_TIMEOUT,
    settle: float = DEFAULT_SETTLE,
    progress: Progress | None = None,
    show_events: bool = False,
    verbose: bool = False,
    clock: Clock = monotonic,
    wall_clock: Callable[[], float] = time.time,
) -> FlashResult:
    """Flash `image` and verify, up to `retries` more times until the device runs it.

    `flasher.prepare(image)` must have been called. The outcome of each attempt that is
    followed by another is one line on `progress` (the last one is the caller's to show,
    from the result); `show_events` prints every event heard as a line even on a terminal
    (the demo). StampErrors that retrying cannot fix (a rejected token, an unknown
    device) propagate; a failed flash or a wrong or silent device is a failed attempt.
    """
    progress = progress or Progress(quiet=True)
    total = retries + 1
    attempts: list[Attempt] = []
    for number in range(1, total + 1):
        if number == 1:
            doing = f"flashing {image.describe()} {flasher.describe()}"
        else:
            doing = "flashing again" + (" (the last attempt)" if number == total else "")
        progress.line(f"stamp: attempt {number}/{total}: {doing}")
        attempt = _attempt(
            flasher,
            image,
            history,
            number,
            timeout=timeout,
            settle=settle,
            waiting=Watch(progress, timeout, lines=show_events, verbose=verbose),
            clock=clock,
            wall_clock=wall_clock,
        )
        attempts.append(attempt)
        if attempt.status is VerdictStatus.VERIFIED or number == total:
            break  # the caller shows the final verdict
        progress.line(f"stamp: attempt {number}/{total}: {attempt.summary()}; retrying")
    return FlashResult(attempts=tuple(attempts), retries=retries)


def _attempt(
    flasher: Flasher,
    image: FlashImage,
    history: History,
    number: int,
    *,
    timeout: float,
    settle: float,
    waiting: Watch,
    clock: Clock,
    wall_clock: Callable[[], float],
) -> Attempt:
    started = clock()
    since = wall_clock()
    say = waiting.line
    flashed = False
    if not flasher.flash_while_listening:
        try:
            flasher.flash(image, say)
        except FlashError as exc:
            return Attempt(number, None, exc.message, clock() - started)
        flashed = True
    attempt_clock = _AttemptClock(clock, timeout)

    def on_heard(heard: Heard) -> None:
        nonlocal flashed
        waiting.heard(heard)
        if not flashed and heard.kind is HeardKind.STATUS and heard.text == STREAM_CONNECTED:
            flashed = True
            flasher.flash(image, say)
        elif flashed and heard.kind is not HeardKind.LINE and heard.text.strip() == CAME_ONLINE:
            attempt_clock.settle_after(settle)
        elif heard.kind is HeardKind.REPORT:
            attempt_clock.cancel()

    try:
        with flasher.open(since, attempt_clock) as transport:
            listening = clock()
            waiting.start()
            try:
                verdict = verify(
                    transport,
                    image.manifest,
                    history,
                    timeout=timeout,
                    clock=attempt_clock,
                    on_heard=on_heard,
                )
            finally:
                waiting.stop()
    except FlashError as exc:
        return Attempt(number, None, exc.message, clock() - started)
    if attempt_clock.settled:
        # It stopped early on purpose: say how long it really listened.
        waited = round(clock() - listening, 1)
        verdict = replace(verdict, elapsed=waited, timeout=waited)
    note = None
    if not flashed:
        note = "nothing was flashed: " + (
            "the device's event stream did not connect"
            if verdict.status is VerdictStatus.NO_REPORT
            else "the device answered before the upload"
        )
    return Attempt(number, verdict, note, clock() - started)


class _AttemptClock:
    """The deadline clock of one attempt: monotonic time, which jumps past the deadline
    once `settle` seconds went by after the device came back online with nothing to say.

    Transports and `verify` stop when their clock reaches the deadline and look at it
    between reads, so moving the clock ends the wait even when nothing more arrives.
    """

    def __init__(self, base: Clock, timeout: float) -> None:
        self._base = base
        self._jump = timeout
        self._settle_at: float | None = None
        self.settled = False
        """The settle time ran out: the attempt ended early."""

    def __call__(self) -> float:
        now = self._base()
        if not self.settled and self._settle_at is not None and now >= self._settle_at:
            self.settled = True
        return now + self._jump if self.settled else now

    def settle_after(self, seconds: float) -> None:
        if not self.settled:
            self._settle_at = self._base() + seconds

    def cancel(self) -> None:
        """A report came: the verdict decides, or the full timeout runs."""
        if not self.settled:
            self._settle_at = None
