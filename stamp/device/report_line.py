"""The device report protocol of SPEC section 6: `@stamp {json}` lines in any byte stream.

`LineScanner` splits a stream of arbitrary chunks into lines without ever holding more
than MAX_LINE bytes of an unfinished line: a device spewing 10 MB without a newline costs
no memory. `parse_report` turns one line (or a bare JSON object, as the cloud carries it)
into a `Report`.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from stamp.identity import KEY_NAMES, Identity, IdentityError, parse_identity

if TYPE_CHECKING:
    from stamp.device.image_state import ImageStates

log = logging.getLogger("stamp.device.report_line")

PREFIX = b"@stamp "
MAX_LINE = 512
QUERY = b"?stamp\n"
OVERLONG = b"<overlong line>"
"""What `LineScanner(mark_overlong=True).feed()` returns for a dropped line (test with `is`)."""
SMP_SOURCE = "smp image state"
"""The Report.source of an SMP device's image state."""


@dataclass(frozen=True)
class Report:
    """An identity as a device reported it (any subset of SPEC section 5's keys)."""

    identity: Identity = field(default_factory=Identity)
    """The identity keys the device reported (SPEC section 5); unknown ones are None."""
    source: str = ""
    """Where it was heard (e.g. "serial line", "cloud event stamp", "spark/device/app-hash")."""
    extra: dict[str, Any] = field(default_factory=dict)
    """Keys stamp does not know: kept, ignored."""
    image_states: ImageStates | None = None
    """MCUboot: every slot the device reported (is the running image confirmed?)."""


def smp_report(states: ImageStates) -> Report:
    """The report of an SMP device: the active slot's hash is the running build's identity."""
    active = states.active
    return Report(
        identity=Identity(
            mcuboot_hash=active.hash if active else None,
            image_version=active.version if active else None,
        ),
        image_states=states,
        source=SMP_SOURCE,
    )


class ReportError(ValueError):
    """A line that looked like a report but is not a valid one."""


def report_from_object(obj: Any, source: str) -> Report:
    """Validate a decoded JSON object into a Report; ReportError when it is not one."""
    if not isinstance(obj, dict):
        raise ReportError("report is not a JSON object")
    try:
        identity = parse_identity(obj, empty_is_unknown=True)
    except IdentityError as exc:
        raise ReportError(f"report has a {exc}") from None
    return Report(
        identity=identity,
        source=source,
        extra={k: v for k, v in obj.items() if k not in KEY_NAMES},
    )


def parse_json_report(text: str | bytes, source: str) -> Report:
    """A bare JSON report (cloud event data, cloud variable value)."""
    try:
        obj = json.loads(text)
    except RecursionError:
        raise ReportError("report is nested too deeply") from None
    except ValueError as exc:  # invalid JSON or UTF-8, an integer of thousands of digits
        raise ReportError(f"report is not valid JSON: {str(exc)[:120]}") from None
    return report_from_object(obj, source)


def parse_report_line(line: bytes, source: str = "serial") -> Report | None:
    """The Report in one line, None if the line holds no `@stamp ` marker.

    The marker may follow other output on the same line (a log prefix); a trailing `\\r`
    is ignored. ReportError when the marker is there but the JSON is not a valid report.
    """
    at = line.find(PREFIX)
    if at < 0:
        return None
    payload = line[at + len(PREFIX) :].rstrip(b"\r")
    return parse_json_report(payload, source)


class LineScanner:
    """Splits chunks of a byte stream into complete lines, bounding each to MAX_LINE bytes.

    A line longer than MAX_LINE is dropped whole (it cannot be a report) and counted in
    `overlong`; bytes are discarded as they arrive, so memory stays bounded.
    """

    def __init__(self, max_line: int = MAX_LINE, *, mark_overlong: bool = False) -> None:
        """With `mark_overlong`, feed() returns OVERLONG in place of each dropped line."""
        self.max_line = max_line
        self.mark_overlong = mark_overlong
        self._buf = bytearray()
        self._discarding = False
        self.lines = 0
        """Complete lines seen (including overlong ones)."""
        self.overlong = 0
        """Lines dropped for exceeding max_line."""

    def feed(self, chunk: bytes) -> list[bytes]:
        """Complete lines in `chunk` (plus what was buffered), without their `\\n` or
        `\\r\\n`; with mark_overlong, OVERLONG as soon as a line is too long."""
        out: list[bytes] = []
        *complete, tail = chunk.split(b"\n")
        for piece in complete:
            discarding = self._discarding
            if self._buf or discarding:  # the end of a line begun in an earlier chunk
                self._append(piece, out)
                line, discarding = bytes(self._buf), self._discarding
                self._buf.clear()
                self._discarding = False
            else:
                line = piece
            self.lines += 1
            if line.endswith(b"\r"):
                line = line[:-1]  # a `\r\n` ending: the `\r` is no part of the line
            if discarding or len(line) > self.max_line:
                self.overlong += 1
                if self.mark_overlong and not discarding:
                    out.append(OVERLONG)
            else:
                out.append(line)
        self._append(tail, out)
        return out

    def _append(self, piece: bytes, out: list[bytes]) -> None:
        if self._discarding or not piece:
            return
        # One byte of room past max_line for the `\r` of a `\r\n` ending (SPEC section 6).
        if len(self._buf) + len(piece) > self.max_line + 1:
            self._discard(out)
            return
        self._buf += piece

    def _discard(self, out: list[bytes]) -> None:
        self._buf.clear()
        self._discarding = True
        if self.mark_overlong:
            out.append(OVERLONG)


class ReportScanner:
    """Finds reports in a byte stream; counts what else was heard, for the timeout message."""

    def __init__(self, source: str = "serial") -> None:
        self.source = source
        self.scanner = LineScanner()
        self.invalid = 0
        """Lines with the `@stamp ` marker whose JSON was not a valid report."""

    @property
    def lines(self) -> int:
        return self.scanner.lines

    def feed(self, chunk: bytes) -> list[Report]:
        reports: list[Report] = []
        for line in self.scanner.feed(chunk):
            try:
                report = parse_report_line(line, self.source)
            except ReportError as exc:
                self.invalid += 1
                log.debug("ignored invalid report line %r: %s", line[:80], exc)
                continue
            if report is not None:
                reports.append(report)
        return reports
