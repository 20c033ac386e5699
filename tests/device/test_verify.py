"""The verdict rules and the listen loop (pure: a scripted transport and a fake clock)."""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from stamp.artifact.manifest import Manifest
from stamp.cli.heard_words import heard_text
from stamp.cli.json_records import verdict_record
from stamp.cli.verdict_words import explanation, verdict_message
from stamp.closing import Closing
from stamp.device.report_line import Report, parse_json_report
from stamp.device.transport.base import Heard, HeardKind
from stamp.device.transport.cloud_events import CloudEvent, heard_from_event
from stamp.device.verify import (
    APP_HASH_SOURCE,
    HeardSummary,
    KeyComparison,
    SilenceCause,
    Verdict,
    VerdictStatus,
    assess,
    compare,
    find_build,
    verify,
)
from stamp.errors import AuthError, DeviceUnreachable
from stamp.identity import Identity

GIT_A = "1a2b3c4d" + "0" * 32
GIT_B = "9f8e7d6c" + "1" * 32
BID_A = "5f3a9c21" + "a" * 32
BID_B = "77aa88bb" + "b" * 32
APP_A = "ab" * 32
APP_B = "cd" * 32
NOW = datetime(2026, 11, 30, 12, 0, 0, tzinfo=UTC)


def manifest(**keys: Any) -> Manifest:
    recorded_at = keys.pop("recorded_at", "2026-11-30T11:35:00Z")
    return Manifest(identity=Identity(**keys), recorded_at=recorded_at)


def report(**keys: Any) -> Report:
    source = keys.pop("source", "")
    extra = keys.pop("extra", {})
    return Report(identity=Identity(**keys), source=source, extra=extra)


EXPECTED = manifest(edit=111, git=GIT_A, dirty=False, build_id=BID_A, app_hash=APP_A)

V, M = VerdictStatus.VERIFIED, VerdictStatus.MISMATCH

# (name, report keys, status or None when the report proves nothing)
CASES: list[tuple[str, dict[str, Any], VerdictStatus | None]] = [
    ("build-id alone", dict(build_id=BID_A), V),
    ("app hash alone", dict(app_hash=APP_A), V),
    ("git and edit", dict(git=GIT_A, edit=111), V),
    ("the full report", dict(edit=111, git=GIT_A, dirty=False, build_id=BID_A), V),
    ("git alone", dict(git=GIT_A), None),
    ("edit alone", dict(edit=111), None),
    ("dirty alone", dict(dirty=False), None),
    ("nothing", dict(), None),
    ("unknown keys only", dict(extra={"uptime": 5}), None),
    ("another build-id", dict(build_id=BID_B), M),
    ("build-id prefix", dict(build_id=BID_A[:16]), M),
    ("build-id longer", dict(build_id=BID_A + "00"), M),
    ("another app hash", dict(app_hash=APP_B), M),
    ("another edit alone", dict(edit=109), M),
    ("another git alone", dict(git=GIT_B), M),
    ("build-id matches but edit differs", dict(build_id=BID_A, edit=110), M),
    ("git and edit match but build-id differs", dict(git=GIT_A, edit=111, build_id=BID_B), M),
    ("dirty differs", dict(git=GIT_A, edit=111, dirty=True), M),
    ("git unknown on the device", dict(git="unknown", edit=111), M),
]


@pytest.mark.parametrize(("keys", "status"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_assess_table(keys: dict[str, Any], status: VerdictStatus | None) -> None:
    got, compared = assess(EXPECTED, report(**keys))
    assert got is status
    reported = {k for k in keys if k != "extra"}
    assert {c.key for c in compared} == reported & set(EXPECTED.identity.known())


def test_hex_is_compared_case_insensitively_and_in_full() -> None:
    upper = compare(Identity(build_id=BID_A), Identity(build_id=BID_A.upper()))
    assert upper == (KeyComparison("build_id", BID_A, BID_A.upper(), True),)
    assert not compare(Identity(build_id=BID_A), Identity(build_id=BID_A[:9]))[0].match
    # The parser lowercases too, so a device printing upper case verifies.
    line = parse_json_report(json.dumps({"build_id": BID_A.upper()}), "serial")
    assert assess(EXPECTED, line)[0] is V


def test_edit_true_is_not_edit_one() -> None:
    assert not compare(Identity(edit=1), Identity(edit=True))[0].match


def test_keys_the_manifest_lacks_are_not_compared() -> None:
    elf_only = manifest(edit=111, git=GIT_A, dirty=False, build_id=BID_A)
    status, compared = assess(elf_only, report(app_hash=APP_B))
    assert status is None and compared == ()


def test_both_git_unknown_is_not_a_strong_match() -> None:
    outside_git = manifest(edit=4, git="unknown", dirty=None)
    assert assess(outside_git, report(edit=4, git="unknown"))[0] is None
    assert assess(outside_git, report(edit=5, git="unknown"))[0] is M


def test_image_sha256_identifies_a_build() -> None:
    expected = manifest(edit=3, image_sha256=APP_A)
    assert assess(expected, report(image_sha256=APP_A))[0] is V


# --- find_build -----------------------------------------------------------------------


def test_find_build_takes_the_newest_strong_match() -> None:
    old = manifest(edit=108, git=GIT_B, build_id=BID_B, recorded_at="2026-11-30T10:00:00Z")
    again = manifest(edit=109, git=GIT_B, build_id=BID_B, recorded_at="2026-11-30T11:00:00Z")
    other = manifest(edit=110, git=GIT_A, build_id="ee" * 20)
    history = [old, again, other, EXPECTED]
    assert find_build(history, report(build_id=BID_B)) is again
    assert find_build(history, report(git=GIT_B, edit=108)) is old
    assert find_build(history, report(edit=109)) is None  # edit alone identifies nothing
    assert find_build(history, report(build_id=BID_B, edit=107)) is None  # contradicts both
    assert find_build([], report(build_id=BID_B)) is None


# --- the listen loop --------------------------------------------------------------------


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


@dataclass
class ScriptedTransport(Closing):
    """Yields scripted items, each `step` seconds apart, then waits out the deadline."""

    items: list[Heard | Exception]
    clock: FakeClock
    step: float = 1.0
    endless: bool = False
    consumed: int = 0
    closed_iter: bool = False
    closes: int = 0
    given_deadline: float | None = None
    log: list[str] = field(default_factory=list)

    def describe(self) -> str:
        return "serial /dev/pts/9 at 115200 baud"

    def listen(self, deadline: float) -> Iterator[Heard]:
        self.given_deadline = deadline
        try:
            items = list(self.items)
            while items or self.endless:
                item = items.pop(0) if items else heard(HeardKind.LINE, "noise")
                self.clock.now += self.step
                self.consumed += 1
                if isinstance(item, Exception):
                    raise item
                yield item
            self.clock.now = max(self.clock.now, deadline)
        finally:
            self.closed_iter = True

    def close(self) -> None:
        self.closes += 1


def heard(kind: HeardKind, text: str, rep: Report | None = None) -> Heard:
    return Heard(kind=kind, text=text, at=0.0, report=rep)


def said(rep: Report) -> Heard:
    return heard(HeardKind.REPORT, f"report from {rep.source}", rep)


OPENED = heard(HeardKind.STATUS, "port /dev/pts/9 opened")


def run(
    items: list[Heard | Exception], history: Sequence[Manifest] = (), **kw: Any
) -> tuple[Verdict, ScriptedTransport]:
    clock = FakeClock()
    transport = ScriptedTransport(items, clock, **kw)
    verdict = verify(transport, EXPECTED, list(history), timeout=30, clock=clock)
    return verdict, transport


def test_verified_as_soon_as_a_matching_report_arrives() -> None:
    good = report(edit=111, git=GIT_A, dirty=False, build_id=BID_A, source="serial")
    seen: list[Heard] = []
    clock = FakeClock()
    items: list[Heard | Exception] = [OPENED, heard(HeardKind.LINE, "boot"), said(good)]
    transport = ScriptedTransport([*items, heard(HeardKind.LINE, "after")], clock)
    verdict = verify(transport, EXPECTED, [], timeout=30, clock=clock, on_heard=seen.append)
    assert verdict.status is V
    assert verdict.reported == good
    assert [c.key for c in verdict.compared] == ["edit", "git", "dirty", "build_id"]
    assert verdict.elapsed == 3.0
    assert transport.consumed == 3  # decided without reading on
    assert transport.closed_iter  # the listen generator was closed, releasing what it held
    assert transport.closes == 0  # the caller owns the transport
    assert transport.given_deadline == 130.0
    assert seen == items
    assert verdict.heard == HeardSummary(lines=1, reports=1, events=0, notes=(OPENED,))
    assert verdict.matched_build is None


def test_an_inconclusive_report_does_not_end_the_wait() -> None:
    expected_no_app = manifest(edit=111, git=GIT_A, dirty=False, build_id=BID_A)
    app = report(app_hash=APP_B, source=APP_HASH_SOURCE)
    stamp_event = report(edit=111, git=GIT_A, dirty=False, build_id=BID_A, source="cloud")
    clock = FakeClock()
    transport = ScriptedTransport([said(app), said(stamp_event)], clock)
    verdict = verify(transport, expected_no_app, [], timeout=30, clock=clock)
    assert verdict.status is V and verdict.reported == stamp_event


def test_an_app_hash_mismatch_decides_before_the_stamp_event() -> None:
    old = manifest(edit=109, git=GIT_B, dirty=False, build_id=BID_B, app_hash=APP_B)
    app = report(app_hash=APP_B, source=APP_HASH_SOURCE)
    later = report(edit=109, git=GIT_B, source="cloud")
    verdict, transport = run([said(app), said(later)], history=[old, EXPECTED])
    assert verdict.status is M
    assert transport.consumed == 1
    assert verdict.matched_build is old
    assert verdict.compared == (KeyComparison("app_hash", APP_A, APP_B, False),)


def test_silence_on_a_serial_port_says_what_was_heard() -> None:
    lines = [heard(HeardKind.LINE, f"noise {i}") for i in range(3)]
    verdict, _ = run([OPENED, *lines])
    assert verdict.status is VerdictStatus.NO_REPORT
    assert verdict.elapsed == 30.0
    assert verdict.reported is None
    assert verdict_message(verdict, now=NOW) == (
        "NO REPORT: nothing identified the build on serial /dev/pts/9 at 115200 baud within "
        "30 s: port /dev/pts/9 opened, 3 lines received, none was a report"
    )


def test_silence_with_nothing_at_all() -> None:
    verdict, _ = run([])
    assert verdict_message(verdict, now=NOW).endswith("within 30 s: heard nothing")


def test_an_inconclusive_report_until_the_timeout_is_no_report_saying_why() -> None:
    verdict, _ = run([OPENED, said(report(edit=111, source="serial"))])
    assert verdict.status is VerdictStatus.NO_REPORT
    assert verdict.reported == report(edit=111, source="serial")
    message = verdict_message(verdict, now=NOW)
    assert "1 report heard, but the last (edit) cannot confirm a build" in message


def test_cloud_device_online_without_an_app_hash_event() -> None:
    items: list[Heard | Exception] = [
        heard(HeardKind.STATUS, "event stream connected"),
        heard(HeardKind.EVENT, "spark/flash/status: success"),
        heard_from_event(CloudEvent("spark/status", "online"), 0.0),
    ]
    verdict, _ = run(items)
    assert verdict.status is VerdictStatus.NO_REPORT
    assert verdict.heard.events == 1
    assert [heard_text(n) for n in verdict.heard.notes] == [
        "event stream connected",
        "spark/status: online",
    ]
    assert verdict.heard.cause is SilenceCause.FLASH_DID_NOT_TAKE
    assert explanation(verdict.heard) == (
        "device online, no stamp event; app hash unchanged since last session, "
        "which usually means the flash did not take"
    )
    assert verdict_message(verdict, now=NOW).endswith(
        "spark/status: online, 1 other event, device online, no stamp event; app hash "
        "unchanged since last session, which usually means the flash did not take"
    )


def test_a_device_already_online_is_no_evidence_of_a_restart() -> None:
    items: list[Heard | Exception] = [
        heard(HeardKind.STATUS, "device my_photon (0123) is online"),
        heard(HeardKind.STATUS, "event stream connected"),
        heard(HeardKind.STATUS, "no stamp variable (offline, or an app without stamp)"),
    ]
    verdict, _ = run(items)
    assert verdict.heard.cause is None


def test_an_app_hash_event_means_the_flash_took() -> None:
    expected_no_app = manifest(edit=111, git=GIT_A, dirty=False, build_id=BID_A)
    clock = FakeClock()
    items: list[Heard | Exception] = [
        heard_from_event(CloudEvent("spark/status", "online"), 0.0),
        said(report(app_hash=APP_B, source=APP_HASH_SOURCE)),
    ]
    transport = ScriptedTransport(items, clock)
    verdict = verify(transport, expected_no_app, [], timeout=30, clock=clock)
    assert verdict.status is VerdictStatus.NO_REPORT
    assert verdict.heard.cause is None
    message = verdict_message(verdict, now=NOW)
    assert "shares no key with the manifest (make it with `stamp manifest ELF --bin BIN`" in message


def test_unreachable_ends_the_wait_with_no_report() -> None:
    verdict, _ = run([OPENED, DeviceUnreachable("port /dev/pts/9 vanished")])
    assert verdict.status is VerdictStatus.NO_REPORT
    assert verdict.unreachable == "port /dev/pts/9 vanished"
    assert verdict_message(verdict, now=NOW) == (
        "NO REPORT: serial /dev/pts/9 at 115200 baud unreachable: port /dev/pts/9 vanished "
        "(heard: port /dev/pts/9 opened)"
    )


def test_a_rejected_token_is_not_a_verdict() -> None:
    with pytest.raises(AuthError):
        run([AuthError("the Particle Cloud rejected the token")])


def test_a_chatty_device_cannot_hold_the_wait_past_the_deadline() -> None:
    verdict, transport = run([], endless=True, step=0.5)
    assert verdict.status is VerdictStatus.NO_REPORT
    assert transport.consumed == 60
    assert verdict.heard.lines == 60


# --- the words --------------------------------------------------------------------------


def _verdict(status: VerdictStatus, rep: Report | None, **kw: Any) -> Verdict:
    expected = kw.pop("expected", EXPECTED)
    compared = assess(expected, rep)[1] if rep else ()
    return Verdict(
        status=status,
        expected=expected,
        reported=rep,
        compared=compared,
        matched_build=kw.pop("matched_build", None),
        heard=HeardSummary(reports=1),
        elapsed=1.0,
        device="serial /dev/pts/9 at 115200 baud",
        timeout=30,
        **kw,
    )


def test_verified_message_names_the_build_and_what_proved_it() -> None:
    rep = report(edit=111, git=GIT_A, dirty=False, build_id=BID_A)
    assert verdict_message(_verdict(V, rep)) == (
        "VERIFIED: device runs edit 111 (git 1a2b3c4d, build-id 5f3a9c21…)"
    )
    by_app = _verdict(V, report(app_hash=APP_A))
    assert (
        verdict_message(by_app)
        == "VERIFIED: device runs edit 111 (git 1a2b3c4d, app hash abababab…)"
    )
    dirty = manifest(edit=7, git=GIT_A, dirty=True)
    message = verdict_message(_verdict(V, report(edit=7, git=GIT_A, dirty=True), expected=dirty))
    assert message == "VERIFIED: device runs edit 7 (git 1a2b3c4d with uncommitted changes)"


def test_mismatch_names_the_build_from_the_history() -> None:
    old = manifest(
        edit=109, git=GIT_B, dirty=False, build_id=BID_B, recorded_at="2026-11-30T11:35:00Z"
    )
    rep = report(edit=109, git=GIT_B, dirty=False, build_id=BID_B)
    verdict = _verdict(M, rep, matched_build=old)
    assert verdict_message(verdict, now=NOW) == (
        "MISMATCH: device runs edit 109 (git 9f8e7d6c, built 25 min ago); expected edit 111"
    )


def test_mismatch_on_a_dirty_build_carries_the_caveat() -> None:
    old = manifest(
        edit=110, git=GIT_A, dirty=True, build_id=BID_B, recorded_at="2026-11-28T12:00:00Z"
    )
    verdict = _verdict(M, report(build_id=BID_B), matched_build=old)
    assert verdict_message(verdict, now=NOW) == (
        "MISMATCH: device runs edit 110 (git 1a2b3c4d with uncommitted changes, built 2 days ago); "
        "expected edit 111 (build-id 5f3a9c21…)"
    )


def test_mismatch_with_an_unknown_build() -> None:
    rep = report(edit=105, git=GIT_B, build_id=BID_B)
    assert verdict_message(_verdict(M, rep), now=NOW) == (
        "MISMATCH: device runs a build not in this checkout's history "
        "(edit 105, git 9f8e7d6c, build-id 77aa88bb…); expected edit 111"
    )
    weak = _verdict(M, report(edit=105))
    assert verdict_message(weak, now=NOW) == (
        "MISMATCH: device runs a build it does not fully identify (edit 105); expected edit 111"
    )


def test_mismatch_with_the_same_edit_shows_what_differs() -> None:
    rep = report(edit=111, git=GIT_A, dirty=True)
    assert verdict_message(_verdict(M, rep), now=NOW) == (
        "MISMATCH: device runs a build not in this checkout's history "
        "(edit 111, git 1a2b3c4d with uncommitted changes); expected edit 111 (git 1a2b3c4d, clean)"
    )


def test_verdict_record() -> None:
    old = manifest(edit=109, git=GIT_B, dirty=False, build_id=BID_B)
    rep = report(edit=109, git=GIT_B, dirty=False, build_id=BID_B, source="serial", extra={"x": 1})
    record = verdict_record(_verdict(M, rep, matched_build=old), now=NOW)
    assert record["status"] == "mismatch"
    assert record["message"].startswith("MISMATCH: device runs edit 109")
    assert record["expected"]["edit"] == 111 and record["expected"]["app_hash"] == APP_A
    assert record["reported"] == {
        "edit": 109,
        "git": GIT_B,
        "dirty": False,
        "build_id": BID_B,
        "source": "serial",
        "extra": {"x": 1},
    }
    assert record["compared"][0] == {
        "key": "edit",
        "expected": 111,
        "reported": 109,
        "match": False,
    }
    assert record["matched_build"]["edit"] == 109
    assert record["heard"] == {
        "lines": 0,
        "reports": 1,
        "events": 0,
        "notes": [],
        "explanation": None,
    }
    assert set(record) >= {"elapsed", "timeout", "device", "unreachable"}


def test_age_wording() -> None:
    def age(delta: timedelta) -> str:
        old = manifest(edit=1, build_id=BID_B, recorded_at=(NOW - delta).isoformat())
        return verdict_message(_verdict(M, report(build_id=BID_B), matched_build=old), now=NOW)

    assert "built just now" in age(timedelta(seconds=3))
    assert "built 45 s ago" in age(timedelta(seconds=45))
    assert "built 3 h ago" in age(timedelta(hours=3))
