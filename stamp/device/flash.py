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
from typing import TYPE_CHECKING, Protocol

from stamp.device.transport.base import Clock, Heard, HeardKind, Signal, monotonic
from stamp.device.verify import History, Verdict, VerdictStatus, verify
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


class FlashWatcher(Protocol):
    """What the flash loop tells while it works; the CLI shows it (`stamp.cli.watch`)."""

    def attempt_started(self, number: int, total: int) -> None:
        """Attempt `number` of `total` begins (its flash comes next)."""

    def attempt_failed(self, attempt: Attempt, total: int) -> None:
        """`attempt` did not verify and another one follows."""

    def said(self, text: str) -> None:
        """A line of the flasher's own output (the flash command's, the upload's)."""

    def listening(self) -> None:
        """Waiting for the device starts."""

    def heard(self, heard: Heard) -> None:
        """The transport heard something."""

    def stopped(self) -> None:
        """Waiting for the device ended."""


class _Unwatched:
    """A FlashWatcher that shows nothing."""

    def attempt_started(self, number: int, total: int) -> None:
        pass

    def attempt_failed(self, attempt: Attempt, total: int) -> None:
        pass

    def said(self, text: str) -> None:
        pass

    def listening(self) -> None:
        pass

    def heard(self, heard: Heard) -> None:
        pass

    def stopped(self) -> None:
        pass


def flash_and_verify(
    flasher: Flasher,
    image: FlashImage,
    history: History,
    *,
    retries: int = DEFAULT_RETRIES,
    timeout: float = DEFAULT_TIMEOUT,
    settle: float = DEFAULT_SETTLE,
    watcher: FlashWatcher | None = None,
    clock: Clock = monotonic,
    wall_clock: Callable[[], float] = time.time,
    allow_unconfirmed: bool = False,
) -> FlashResult:
    """Flash `image` and verify, up to `retries` more times until the device runs it.

    `flasher.prepare(image)` must have been called. `watcher` hears how each attempt goes
    (the last one's outcome is the caller's to show, from the result). StampErrors that
    retrying cannot fix (a rejected token, an unknown device) propagate; a failed flash or
    a wrong or silent device is a failed attempt.
    """
    watcher = watcher or _Unwatched()
    total = retries + 1
    attempts: list[Attempt] = []
    for number in range(1, total + 1):
        watcher.attempt_started(number, total)
        attempt = _attempt(
            flasher,
            image,
            history,
            number,
            timeout=timeout,
            settle=settle,
            waiting=watcher,
            clock=clock,
            wall_clock=wall_clock,
            allow_unconfirmed=allow_unconfirmed,
        )
        attempts.append(attempt)
        if attempt.status is VerdictStatus.VERIFIED or number == total:
            break  # the caller shows the final verdict
        watcher.attempt_failed(attempt, total)
    return FlashResult(attempts=tuple(attempts), retries=retries)


def _attempt(
    flasher: Flasher,
    image: FlashImage,
    history: History,
    number: int,
    *,
    timeout: float,
    settle: float,
    waiting: FlashWatcher,
    clock: Clock,
    wall_clock: Callable[[], float],
    allow_unconfirmed: bool = False,
) -> Attempt:
    """One flash and its verdict. One function, because the flash happens either before
    the transport opens (a command, SMP) or from inside its listening (the cloud, once the
    event stream is connected), and the settle clock spans both.

    Long because one attempt is one sequence (flash, listen, settle, verify, explain) whose
    steps share the attempt's clock and the flashed flag.
    """
    started = clock()
    since = wall_clock()
    say = waiting.said
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
        if not flashed and heard.signal is Signal.STREAM_CONNECTED:
            flashed = True
            flasher.flash(image, say)
        elif flashed and heard.signal is Signal.CAME_ONLINE:
            attempt_clock.settle_after(settle)
        elif heard.kind is HeardKind.REPORT:
            attempt_clock.cancel()

    try:
        with flasher.open(since, attempt_clock) as transport:
            listening = clock()
            waiting.listening()
            try:
                verdict = verify(
                    transport,
                    image.manifest,
                    history,
                    timeout=timeout,
                    clock=attempt_clock,
                    on_heard=on_heard,
                    allow_unconfirmed=allow_unconfirmed,
                )
            finally:
                waiting.stopped()
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
