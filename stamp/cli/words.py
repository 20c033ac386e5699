"""The words for a verdict and a flash attempt: what `stamp verify` and `stamp flash` print.

`VERIFIED: device runs edit 111 (git 1a2b3c4d, build-id 5f3a…)`,
`MISMATCH: device runs edit 109 (git 1a2b3c4, built 25 min ago); expected edit 111`, or
`NO REPORT: …` with what was heard and what the silence usually means.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any, TextIO

from stamp.cli.output import paint_label
from stamp.device.flash import Attempt
from stamp.device.verify import Verdict, VerdictStatus
from stamp.identity import HASH_KEYS
from stamp.record import GIT_UNKNOWN

SHORT_HEX = 8
"""Hex digits shown of a hash in a sentence (comparisons always use all of them)."""


def verdict_message(verdict: Verdict, *, now: datetime | None = None) -> str:
    """The one sentence for the verdict, e.g. `MISMATCH: device runs edit 109 (…)`."""
    now = now or datetime.now(UTC)
    if verdict.status is VerdictStatus.VERIFIED:
        return f"VERIFIED: device runs {_verified_build(verdict)}"
    if verdict.status is VerdictStatus.MISMATCH:
        device_runs = _reported_build(verdict, now)
        return f"MISMATCH: device runs {device_runs}; expected {_expected_build(verdict)}"
    return f"NO REPORT: {_silence(verdict)}"


VERDICT_COLOURS = {
    VerdictStatus.VERIFIED: "green",
    VerdictStatus.MISMATCH: "red",
    VerdictStatus.NO_REPORT: "yellow",
}


def painted_verdict(verdict: Verdict, stream: TextIO, *, now: datetime | None = None) -> str:
    """The verdict's sentence with its label coloured for `stream` (plain off a terminal)."""
    return paint_label(verdict_message(verdict, now=now), VERDICT_COLOURS[verdict.status], stream)


def attempt_summary(attempt: Attempt, *, now: datetime | None = None) -> str:
    """One line for a flash attempt: its verdict, or why the flash failed."""
    if attempt.verdict is None:
        return f"FLASH FAILED: {attempt.flash_error}"
    verdict = attempt.verdict
    if verdict.status is VerdictStatus.NO_REPORT and verdict.heard.explanation:
        text = f"NO REPORT: {verdict.heard.explanation}"
    else:
        text = verdict_message(verdict, now=now)
    return f"{text} ({attempt.flash_error})" if attempt.flash_error else text


def _short(value: str) -> str:
    return value if len(value) <= SHORT_HEX else value[:SHORT_HEX] + "…"


def _git_part(git: str | None, dirty: bool | None) -> str | None:
    if git is None:
        return None
    text = "git unknown" if git == GIT_UNKNOWN else f"git {git[:SHORT_HEX]}"
    if dirty:
        text += " with uncommitted changes"
    return text


_LABELS = {"build_id": "build-id", "app_hash": "app hash", "image_sha256": "image sha256"}
"""How a hash key is called in a sentence; any other key by its name with spaces."""


def label(key: str) -> str:
    return _LABELS.get(key, key.replace("_", " "))


def _hash_parts(identity: Mapping[str, Any], keys: Iterable[str]) -> list[str]:
    return [f"{label(k)} {_short(identity[k])}" for k in keys if identity.get(k)]


def _verified_build(verdict: Verdict) -> str:
    identity = verdict.expected.identity.known()
    matched = [c.key for c in verdict.compared if c.match and c.key in HASH_KEYS]
    parts = [
        p
        for p in (
            _git_part(identity.get("git"), identity.get("dirty")),
            *_hash_parts(identity, matched),
        )
        if p
    ]
    name = f"edit {identity['edit']}" if "edit" in identity else "the expected build"
    return f"{name} ({', '.join(parts)})" if parts else name


def _reported_build(verdict: Verdict, now: datetime) -> str:
    report = verdict.reported
    assert report is not None
    build = verdict.matched_build
    if build is not None:
        identity = build.identity.known()
        parts = [
            _git_part(identity.get("git"), identity.get("dirty")),
            _age(build.recorded_at, now),
        ]
        name = (
            f"edit {build.identity.edit}" if build.identity.edit is not None else "an older build"
        )
        details = [p for p in parts if p]
        if not details:
            details = _hash_parts(identity, HASH_KEYS)[:1]
        return f"{name} ({', '.join(details)})" if details else name
    identity = report.identity.known()
    parts = [
        f"edit {identity['edit']}" if "edit" in identity else None,
        _git_part(identity.get("git"), identity.get("dirty")),
        *_hash_parts(identity, HASH_KEYS),
    ]
    shown = ", ".join(p for p in parts if p)
    has_strong = any(k in identity for k in HASH_KEYS) or ("git" in identity and "edit" in identity)
    what = (
        "a build not in this checkout's history"
        if has_strong
        else "a build it does not fully identify"
    )
    return f"{what} ({shown})" if shown else what


def _expected_build(verdict: Verdict) -> str:
    identity = verdict.expected.identity.known()
    differing = [c.key for c in verdict.differing]
    name = f"edit {identity['edit']}" if "edit" in identity else "the manifest's build"
    # When the edits agree the name alone cannot show the difference: name what differs.
    if "edit" in differing:
        return name
    parts: list[str] = []
    if "git" in differing or "dirty" in differing:
        git = _git_part(identity.get("git"), identity.get("dirty"))
        if git:
            parts.append(git)
        if "dirty" in differing and not identity.get("dirty"):
            parts.append("clean")
    parts += _hash_parts(identity, [k for k in HASH_KEYS if k in differing])
    return f"{name} ({', '.join(parts)})" if parts else name


def _age(recorded_at: str, now: datetime) -> str | None:
    try:
        then = datetime.fromisoformat(recorded_at)
    except ValueError:
        return None
    if then.tzinfo is None:
        then = then.replace(tzinfo=UTC)
    seconds = (now - then).total_seconds()
    if seconds < 0:
        return f"built {recorded_at}"
    if seconds < 90:
        return "built just now" if seconds < 10 else f"built {int(seconds)} s ago"
    minutes = seconds / 60
    if minutes < 90:
        return f"built {round(minutes)} min ago"
    hours = minutes / 60
    if hours < 48:
        return f"built {round(hours)} h ago"
    return f"built {round(hours / 24)} days ago"


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


def _silence(verdict: Verdict) -> str:
    heard = verdict.heard
    where = verdict.device or "the device"
    if verdict.unreachable:
        head = f"{where} unreachable: {verdict.unreachable}"
    else:
        head = f"nothing identified the build on {where} within {verdict.timeout:g} s"
    facts: list[str] = list(heard.notes)
    if heard.lines:
        line_note = _plural(heard.lines, "line") + " received"
        if heard.reports == 0:
            line_note += ", none was a report"
        facts.append(line_note)
    if heard.events:
        facts.append(_plural(heard.events, "other event"))
    if heard.reports and verdict.reported is not None:
        facts.append(_why_inconclusive(verdict))
    if heard.explanation:
        facts.append(heard.explanation)
    if verdict.unreachable:
        return f"{head} (heard: {', '.join(facts)})" if facts else head
    return f"{head}: {', '.join(facts) or 'heard nothing'}"


def _why_inconclusive(verdict: Verdict) -> str:
    report = verdict.reported
    assert report is not None
    count = _plural(verdict.heard.reports, "report")
    keys = ", ".join(report.identity.known()) or "no identity keys"
    if not verdict.compared:
        hint = ""
        if report.identity.app_hash is not None and verdict.expected.identity.app_hash is None:
            hint = " (make it with `stamp manifest ELF --bin BIN` to compare the app hash)"
        return f"{count} heard, but the last ({keys}) shares no key with the manifest{hint}"
    return (
        f"{count} heard, but the last ({keys}) cannot confirm a build: that needs a matching "
        "build-id, app hash, or git and edit"
    )
