"""A simulated board on a pseudo-terminal (SPEC section 8): `stamp sim serial`.

The board behaves like the example firmware (examples/cortex-m3/main.c) on a USB serial
port: a short while after it starts it "boots" and prints a few log lines with its
`@stamp` report among them, and it answers each `?stamp` line with the report again.
Like a real USB CDC port (and QEMU's `-serial pty`), output printed while nobody has the
port open is lost, not queued for the next reader.

Its identity comes from the stamp record inside a firmware file (`identity_from_image`),
so a simulated board "runs" exactly what `stamp manifest` extracted from the same file.
"""

from __future__ import annotations

import io
import json
import logging
import math
from collections.abc import Mapping
from typing import Any

from stamp.artifact.build_id import scan_build_id
from stamp.artifact.elf import read_elf
from stamp.device.report_line import QUERY, LineScanner
from stamp.device.transport.base import Clock, monotonic
from stamp.errors import ArtifactError
from stamp.record import find_records, report_object
from stamp.sim.board import PtyBoard

log = logging.getLogger("stamp.sim.serial")

ELF_MAGIC = b"\x7fELF"
"""Longest build-id accepted, in bytes (the device-side C refuses longer ones too)."""
DEFAULT_BOOT_DELAY = 0.5
"""Seconds from start to the boot output: time for a client to open the port first."""
IDLE_POLL = 0.05
"""Seconds between checks for a client while nobody has the port open."""


def identity_from_image(data: bytes) -> dict[str, Any]:
    """The report a board running this firmware (ELF or raw image) prints, as a JSON object.

    ArtifactError when the file holds no stamp record, or several different ones.
    """
    records = {record for _, record in find_records(data)}
    if not records:
        raise ArtifactError(
            "the firmware holds no stamp record: is `stamp.c` compiled and linked in?"
        )
    if len(records) > 1:
        raise ArtifactError(f"the firmware holds {len(records)} different stamp records")
    record = records.pop()
    return report_object(record, _build_id(data))


def _build_id(data: bytes) -> str | None:
    if not data.startswith(ELF_MAGIC):
        return scan_build_id(data)
    try:
        return read_elf(io.BytesIO(data), "the firmware").build_id
    except ArtifactError as exc:
        raise ArtifactError(f"the firmware is not a readable ELF file: {exc}") from None


def report_line(identity: Mapping[str, Any]) -> bytes:
    """The `@stamp` line (without its line ending) the example firmware would print."""
    return b"@stamp " + json.dumps(dict(identity), separators=(",", ":")).encode("ascii")


class SerialBoard(PtyBoard):
    """A simulated board on a new pseudo-terminal; `run()` it, or `start()` it in a thread.

    Open `path` (or give `device` to stamp) to talk to it. `stop()` ends `run()` from
    another thread or a signal handler; `close()` stops it and releases the pty.
    """

    SCHEME = "serial"

    def __init__(
        self,
        identity: Mapping[str, Any],
        *,
        boot_delay: float = DEFAULT_BOOT_DELAY,
        reboot_every: float | None = None,
        answer_queries: bool = True,
        boot_log: bytes | None = None,
        clock: Clock = monotonic,
    ) -> None:
        self.identity = dict(identity)
        """The JSON object the board reports."""
        self.boot_delay = boot_delay
        self.reboot_every = reboot_every
        """Seconds between simulated resets (None: never)."""
        self.answer_queries = answer_queries
        """False: a firmware that reports only at boot and ignores `?stamp`."""
        self.boot_log = boot_log
        """What the board prints at each boot instead of the example firmware's lines (an
        ESP-IDF app's boot log, `stamp.sim.esp`)."""
        self.clock = clock
        self.boots = 0
        """Boot sequences printed so far (whether or not anyone heard them)."""
        self.queries = 0
        """`?stamp` lines received so far (answered or not)."""
        self._report = report_line(self.identity)
        super().__init__()
        self._reset_pending = False

    def reset(self) -> None:
        """Press EN: the board boots again now (from another thread, e.g. a DTR/RTS bridge)."""
        self._reset_pending = True
        self._wake(b"r")

    def run(self) -> None:
        """Boot, then answer queries (and reboot, if asked) until `stop()`."""
        scanner = LineScanner()
        next_boot = self.clock() + self.boot_delay
        while not self._stopping:
            now = self.clock()
            if self._reset_pending:
                self._reset_pending = False
                next_boot = now
            if now >= next_boot:
                self._boot()
                next_boot = now + self.reboot_every if self.reboot_every else math.inf
            wait = max(0.0, min(next_boot - self.clock(), 3600.0))
            if not self.connected:
                # The master reports POLLHUP continuously while no client is attached,
                # so only the wake-up pipe is worth waiting on.
                scanner = LineScanner()
                self._wait([self._wake_r], min(wait, IDLE_POLL))
                continue
            ready = self._wait([self._master, self._wake_r], wait)
            if self._master in ready:
                for line in scanner.feed(self._read()):
                    self._handle(line)

    def _handle(self, line: bytes) -> None:
        if line.strip() == QUERY.strip():
            self.queries += 1
            if self.answer_queries:
                log.debug("answering ?stamp on %s", self.path)
                self._send(self._report + b"\r\n")
        else:
            log.debug("ignored input line %r on %s", line[:40], self.path)

    def _boot(self) -> None:
        if self.boot_log is not None:
            self._send(self.boot_log)
            self.boots += 1
            return
        reason = "power-on" if self.boots == 0 else "watchdog"
        # Noise around the report, with both line endings a real board uses.
        self._send(
            b"\r\n"
            + f"boot: stamp simulated board, reset reason {reason}\r\n".encode()
            + b"boot: flash 1024 KiB, ram 128 KiB\n"
            + self._report
            + b"\n"
            + b"[     0.012] app: ready, send ?stamp for the report again\r\n"
        )
        self.boots += 1  # counted once printed, so a test can wait for "booted" and then listen
