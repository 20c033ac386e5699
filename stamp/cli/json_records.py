"""The records `--json` prints for a verdict and a flash (the keys scripts rely on).

Built here, at the edge, because each carries the sentence a person would read
(`message`); the core's values (`Verdict`, `FlashResult`) know no words.
"""

from __future__ import annotations

from dataclasses import asdict
from datetime import datetime
from typing import Any

from stamp.artifact.history.records import Origin
from stamp.artifact.manifest import Manifest
from stamp.cli.heard_words import heard_text
from stamp.cli.verdict_words import attempt_summary, explanation, verdict_message
from stamp.device.flash import Attempt, FlashResult
from stamp.device.report_line import Report
from stamp.device.verify import Verdict
from stamp.identity import KeyComparison


def verdict_record(verdict: Verdict, *, now: datetime | None = None) -> dict[str, Any]:
    """The record of `stamp verify --json` (also inside `stamp flash --json`)."""
    return {
        "status": verdict.status.value,
        "message": verdict_message(verdict, now=now),
        "device": verdict.device,
        "expected": manifest_record(verdict.expected),
        "reported": report_record(verdict.reported),
        "compared": [_comparison(c) for c in verdict.compared],
        "matched_build": (
            manifest_record(verdict.matched_build, verdict.matched_origin)
            if verdict.matched_build
            else None
        ),
        "heard": {
            "lines": verdict.heard.lines,
            "reports": verdict.heard.reports,
            "events": verdict.heard.events,
            "notes": [heard_text(note) for note in verdict.heard.notes],
            "explanation": explanation(verdict.heard),
        },
        "elapsed": round(verdict.elapsed, 3),
        "timeout": verdict.timeout,
        "unreachable": verdict.unreachable,
    }


def attempt_record(attempt: Attempt, *, now: datetime | None = None) -> dict[str, Any]:
    return {
        "attempt": attempt.number,
        "flash_error": attempt.flash_error,
        "verdict": verdict_record(attempt.verdict, now=now) if attempt.verdict else None,
        "elapsed": round(attempt.elapsed, 3),
    }


def flash_record(result: FlashResult, *, now: datetime | None = None) -> dict[str, Any]:
    """The record of `stamp flash --json`."""
    return {
        "status": result.status,
        "message": attempt_summary(result.final, now=now),
        "retries": result.retries,
        "attempts": [attempt_record(a, now=now) for a in result.attempts],
        "verdict": verdict_record(result.verdict, now=now) if result.verdict else None,
    }


def manifest_record(manifest: Manifest, origin: Origin | None = None) -> dict[str, Any]:
    """A build's identity keys and when it was recorded (and where, when pulled)."""
    record: dict[str, Any] = manifest.identity.as_json()
    record["recorded_at"] = manifest.recorded_at
    if origin is not None:  # a pulled build: where it was made (`stamp history pull`)
        record["origin"] = asdict(origin)
    return record


def _comparison(c: KeyComparison) -> dict[str, Any]:
    record = {"key": c.key, "expected": c.expected, "reported": c.reported, "match": c.match}
    if c.digits is not None:
        # A hash a device may print cut short (ESP-IDF's boot log): how many digits compared.
        record.update(digits=c.digits, of_digits=len(c.expected), needed_digits=c.needed)
    return record


def report_record(report: Report | None) -> dict[str, Any] | None:
    """A device's report: the identity keys it carried and where it came from."""
    if report is None:
        return None
    record: dict[str, Any] = report.identity.known()
    record["source"] = report.source
    if report.image_states is not None:
        record["image_states"] = report.image_states.to_json()
    if report.extra:
        record["extra"] = report.extra
    return record
