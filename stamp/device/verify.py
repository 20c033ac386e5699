"""The verdict: does the device run the build a manifest describes? (SPEC sections 3, 5, 6)

`assess` compares one report with one expected identity; `verify` listens on a transport
and decides as soon as the evidence is conclusive; `stamp.cli.verdict_words` puts a verdict
into the one sentence the CLI prints. Nothing here prints, sleeps or reads a file.

The rules:

- Every identity key the device reported that the manifest also has is compared: hex in
  full and case-insensitively, never as a prefix (ESP-IDF's monitor compares ~9 digits).
- A *strong* match identifies a build: `build_id`, `app_hash` or `image_sha256` equal, or
  `git` and `edit` both equal (with a known git). `edit` or `dirty` alone do not.
- VERIFIED needs at least one strong match and no differing key.
- Any differing key is conclusive: a build has one identity, so a report that contradicts
  the manifest in any key describes another build (MISMATCH).
- A report that differs in nothing but matches nothing strong (an app-hash event when
  the manifest has no app hash, an `{"edit": 111}` line) proves nothing: keep listening.
  If nothing better comes before the timeout, the verdict is NO_REPORT and says why.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import Enum
from typing import Protocol

from stamp.artifact.history.records import Build, Origin
from stamp.artifact.manifest import Manifest
from stamp.device.report_line import Report
from stamp.device.transport.base import Clock, Heard, HeardKind, Signal, Transport, monotonic
from stamp.errors import DeviceUnreachable
from stamp.identity import Identity, KeyComparison, compare, identifies, strong_match

APP_HASH_SOURCE = "spark/device/app-hash"
"""The Report.source of Device OS's app-hash event (stamp.device.transport.cloud_events' naming)."""


class VerdictStatus(Enum):
    """The outcome of a verification."""

    VERIFIED = "verified"
    """The device reported this build's identity."""
    MISMATCH = "mismatch"
    """The device reported another build's identity."""
    NO_REPORT = "no_report"
    """Nothing identified the running build before the timeout (or it was unreachable)."""
    UNCONFIRMED = "unconfirmed"
    """MCUboot: the device runs this build as a test image that is not confirmed, so it
    will revert at the next reset (verified only with allow_unconfirmed)."""


class SilenceCause(Enum):
    """What a NO_REPORT's silence most likely means, when stamp can tell."""

    FLASH_DID_NOT_TAKE = "flash_did_not_take"
    """The device came online and published no new app hash (SPEC section 1: Device OS
    publishes spark/device/app-hash only when the hash changed), so it runs the app it
    ran before: the flash did not take."""


@dataclass(frozen=True)
class HeardSummary:
    """What the transport heard while waiting, for the verdict's explanation."""

    lines: int = 0
    """Serial lines that were not reports."""
    reports: int = 0
    """Valid reports (serial lines, cloud stamp events and variables, app-hash events)."""
    events: int = 0
    """Other cloud events (flash status, last reset, …)."""
    notes: tuple[Heard, ...] = ()
    """The status items heard, in order, each once in a row (a port opened, the stream
    connected, "spark/status: online"); `stamp.cli.heard_words` has their words."""
    cause: SilenceCause | None = None
    """What the silence most likely means, when stamp can tell (e.g. a flash that failed)."""


@dataclass(frozen=True)
class Verdict:
    """The answer to "does the device run this build?"."""

    status: VerdictStatus
    """VERIFIED, MISMATCH or NO_REPORT."""
    expected: Manifest
    """The identity the device should report."""
    reported: Report | None
    """The report the verdict rests on (for NO_REPORT: the last inconclusive one, if any)."""
    compared: tuple[KeyComparison, ...]
    """The keys both `expected` and `reported` carry, compared."""
    matched_build: Manifest | None
    """For a mismatch: the build in the history whose identity the device reported."""
    heard: HeardSummary
    """What was heard while waiting."""
    elapsed: float
    """Seconds from the start of listening to the verdict."""
    device: str = ""
    """Where it listened (the transport's description; never a secret)."""
    timeout: float = 0.0
    """How long it was willing to wait, in seconds."""
    unreachable: str | None = None
    """Why the device could not be reached, when that ended the wait."""
    matched_origin: Origin | None = None
    """Where `matched_build` was made, when it was pulled from another clone (`stamp
    history pull`); None for this checkout's own builds."""

    @property
    def differing(self) -> tuple[KeyComparison, ...]:
        return tuple(c for c in self.compared if not c.match)


# --- comparing ------------------------------------------------------------------------


def assess(
    expected: Manifest, report: Report, *, allow_unconfirmed: bool = False
) -> tuple[VerdictStatus | None, tuple[KeyComparison, ...]]:
    """One report against the manifest: VERIFIED, MISMATCH, UNCONFIRMED, or None when it
    proves nothing. An MCUboot image running unconfirmed verifies only when allowed."""
    compared = compare(expected.identity, report.identity)
    if any(not c.match for c in compared):
        return VerdictStatus.MISMATCH, compared
    if strong_match(compared):
        states = report.image_states
        active = states.active if states is not None else None
        if active is not None and not active.confirmed and not allow_unconfirmed:
            return VerdictStatus.UNCONFIRMED, compared
        return VerdictStatus.VERIFIED, compared
    return None, compared


class BuildIndex(Protocol):
    """Where builds are looked up by identity: the build history (stamp.artifact.history)."""

    def candidates(self, identity: Identity) -> Sequence[Build]:
        """Builds sharing a strong key's value with `identity`, newest first."""
        ...


History = BuildIndex | Sequence[Manifest]
"""The build history, or (in tests and the demo) a list of manifests, oldest first."""


def find_build(history: History, report: Report) -> Manifest | None:
    """The newest history entry that `report` identifies (by the strong keys), if any."""
    found = named_build(history, report)
    return found.manifest if found is not None else None


def named_build(history: History, report: Report) -> Build | None:
    """The history's newest build that `report` identifies, with where it came from."""
    if not isinstance(history, Sequence):
        for build in history.candidates(report.identity):
            if identifies(compare(build.manifest.identity, report.identity)):
                return build
        return None
    for entry in reversed(history):
        if identifies(compare(entry.identity, report.identity)):
            return Build(number=0, manifest=entry, origin=None)
    return None


# --- listening ------------------------------------------------------------------------


class _Tally:
    """Counts what was heard and keeps the status notes, in order, without repeats."""

    def __init__(self) -> None:
        self.lines = 0
        self.reports = 0
        self.events = 0
        self.notes: list[Heard] = []
        self.online = False
        self.app_hash_heard = False

    def add(self, heard: Heard) -> None:
        if heard.kind is HeardKind.LINE:
            self.lines += 1
        elif heard.kind is HeardKind.REPORT:
            self.reports += 1
            if heard.report is not None and heard.report.source == APP_HASH_SOURCE:
                self.app_hash_heard = True
        elif heard.kind is HeardKind.EVENT:
            self.events += 1
        if heard.kind is HeardKind.STATUS and (not self.notes or self.notes[-1].gist != heard.gist):
            self.notes.append(heard)
        # Only the event counts: "device … is online" at the start says nothing of a restart.
        if heard.signal is Signal.CAME_ONLINE:
            self.online = True

    def summary(self, cause: SilenceCause | None = None) -> HeardSummary:
        return HeardSummary(
            lines=self.lines,
            reports=self.reports,
            events=self.events,
            notes=tuple(self.notes),
            cause=cause,
        )


def verify(
    transport: Transport,
    expected: Manifest,
    history: History,
    *,
    timeout: float,
    clock: Clock = monotonic,
    on_heard: Callable[[Heard], None] | None = None,
    allow_unconfirmed: bool = False,
) -> Verdict:
    """Listen on `transport` until the evidence is conclusive or `timeout` seconds pass.

    The transport is opened by the caller and left open (it owns it). `on_heard` sees every
    item as it arrives, for progress. A `DeviceUnreachable` from the transport ends the
    wait with a NO_REPORT verdict that says why; other errors (a rejected token) propagate.

    Long because the listening loop, the tally and the early decisions share one deadline
    and one state; its rules are in the module docstring.
    """
    start = clock()
    deadline = start + timeout
    tally = _Tally()
    last: tuple[Report, tuple[KeyComparison, ...]] | None = None
    unreachable: str | None = None
    heard_items = transport.listen(deadline)
    try:
        for heard in heard_items:
            tally.add(heard)
            if on_heard is not None:
                on_heard(heard)
            if heard.kind is HeardKind.REPORT and heard.report is not None:
                status, compared = assess(
                    expected, heard.report, allow_unconfirmed=allow_unconfirmed
                )
                if status is not None:
                    matched = (
                        named_build(history, heard.report)
                        if status is VerdictStatus.MISMATCH
                        else None
                    )
                    return Verdict(
                        status=status,
                        expected=expected,
                        reported=heard.report,
                        compared=compared,
                        matched_build=matched.manifest if matched else None,
                        matched_origin=pulled_origin(matched),
                        heard=tally.summary(),
                        elapsed=clock() - start,
                        device=transport.describe(),
                        timeout=timeout,
                    )
                last = (heard.report, compared)
            if clock() >= deadline:
                break
    except DeviceUnreachable as exc:
        unreachable = exc.message
    finally:
        close = getattr(heard_items, "close", None)
        if close is not None:
            close()
    return Verdict(
        status=VerdictStatus.NO_REPORT,
        expected=expected,
        reported=last[0] if last else None,
        compared=last[1] if last else (),
        matched_build=None,
        heard=tally.summary(_explain_silence(tally)),
        elapsed=clock() - start,
        device=transport.describe(),
        timeout=timeout,
        unreachable=unreachable,
    )


def _explain_silence(tally: _Tally) -> SilenceCause | None:
    # SPEC section 1: spark/device/app-hash is published only when the hash differs from
    # the previous session, so a device seen coming online without one is running the
    # app it ran before.
    if tally.online and not tally.app_hash_heard and tally.reports == 0:
        return SilenceCause.FLASH_DID_NOT_TAKE
    return None


def pulled_origin(build: Build | None) -> Origin | None:
    """Where a pulled build was made (a build of this checkout needs no introduction)."""
    if build is None or build.pulled_from is None:
        return None
    return build.origin or Origin(host=None, user=None, ci=False)
