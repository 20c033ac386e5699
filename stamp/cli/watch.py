"""Progress while `stamp verify` or `stamp flash` waits for a device to speak."""

from __future__ import annotations

import threading
from dataclasses import KW_ONLY, dataclass

from stamp.cli.heard_words import heard_text
from stamp.cli.terminal import Progress
from stamp.cli.verdict_words import attempt_summary
from stamp.device.flash import Attempt
from stamp.device.flash_image import FlashImage
from stamp.device.flashers import Flasher
from stamp.device.transport.base import Heard, HeardKind, monotonic

TICK = 0.5
"""Seconds between redraws of the waiting line on a terminal."""


class Watch:
    """Progress while waiting for a device: a redrawn status line on a terminal, or one
    line per thing heard (pipes, the demo, or `lines=True`)."""

    def __init__(self, progress: Progress, timeout: float, *, lines: bool, verbose: bool) -> None:
        self.progress = progress
        self.timeout = timeout
        self.lines = lines or not progress.tty
        self.verbose = verbose
        self.started = monotonic()
        self.counts = {"line": 0, "report": 0, "event": 0}
        self.last = ""
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._ticker: threading.Thread | None = None

    def start(self) -> None:
        self.started = monotonic()
        if not self.lines and not self.progress.quiet:
            self._ticker = threading.Thread(target=self._tick, name="stamp-progress", daemon=True)
            self._ticker.start()

    def stop(self) -> None:
        self._stop.set()
        if self._ticker is not None:
            self._ticker.join()
            self._ticker = None
        with self._lock:
            self.progress.done()

    def line(self, text: str) -> None:
        with self._lock:
            self.progress.line(text)

    def heard(self, heard: Heard) -> None:
        kind = heard.kind.value
        if kind in self.counts:
            self.counts[kind] += 1
        elapsed = monotonic() - self.started
        with self._lock:
            self.last = heard_text(heard)
            if not self.lines:
                self.progress.status(self._status(elapsed))
            elif heard.kind is not HeardKind.LINE or self.verbose:
                self.progress.line(f"stamp: [{elapsed:5.1f} s] {kind}: {self.last}")

    def _status(self, elapsed: float) -> str:
        c = self.counts
        text = (
            f"waiting {elapsed:.0f}/{self.timeout:g} s · {c['line']} lines, "
            f"{c['report']} reports, {c['event']} events"
        )
        return f"{text} · {self.last[:60]}" if self.last else text

    def _tick(self) -> None:
        while not self._stop.wait(TICK):
            with self._lock:
                self.progress.status(self._status(monotonic() - self.started))


@dataclass(eq=False)
class FlashProgress:
    """The `stamp.device.flash.FlashWatcher` of the CLI and the demo: a heading per
    attempt, the flasher's output, a `Watch` while waiting, and why an attempt is retried.
    `lines` shows every event as a line even on a terminal (the demo)."""

    progress: Progress
    """Where the headings, lines and the status line go."""
    timeout: float
    """Seconds each attempt listens for a report (the `Watch`'s countdown)."""
    image: FlashImage
    """The file flashed, named in the first heading."""
    flasher: Flasher
    """How it is flashed, named in the first heading."""
    _: KW_ONLY
    lines: bool
    """Every event as its own line, also on a terminal (the demo)."""
    verbose: bool
    """-v: serial lines that are not reports are shown too."""

    def __post_init__(self) -> None:
        self.doing = f"flashing {self.image.describe()} {self.flasher.describe()}"
        """What the first attempt does, e.g. "flashing app.bin over the Particle Cloud to x"."""
        self._watch = self._new_watch()

    def _new_watch(self) -> Watch:
        return Watch(self.progress, self.timeout, lines=self.lines, verbose=self.verbose)

    def attempt_started(self, number: int, total: int) -> None:
        if number == 1:
            doing = self.doing
        else:
            doing = "flashing again" + (" (the last attempt)" if number == total else "")
        self.progress.line(f"stamp: attempt {number}/{total}: {doing}")
        self._watch = self._new_watch()

    def attempt_failed(self, attempt: Attempt, total: int) -> None:
        self.progress.line(
            f"stamp: attempt {attempt.number}/{total}: {attempt_summary(attempt)}; retrying"
        )

    def said(self, text: str) -> None:
        self._watch.line(text)

    def listening(self) -> None:
        self._watch.start()

    def heard(self, heard: Heard) -> None:
        self._watch.heard(heard)

    def stopped(self) -> None:
        self._watch.stop()
