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
from stamp.cli.words import attempt_summary, verdict_message
from stamp.device.flash import Attempt, FlashResult
from stamp.device.report import Report
from stamp.device.verify import Verdict


def verdict_record(verdict: Verdict, *, now: datetime | None = None) -> dict[str, Any]:
    """The record of `stamp verify --json` (also inside `stamp flash --json`)."""
    return {
        "status": verdict.status.value,
        "message": verdict_message(verdict, now=now),
        "device": verdict.device,
        "expected": _manifest(verdict.expected),
        "reported": _report(verdict.reported),
        "compared": [
            {"key": c.key, "expected": c.expected, "reported": c.reported, "match": c.match}
            for c in verdict.compared
        ],
        "matched_build": (
            _manifest(verdict.matched_build, verdict.matched_origin)
            if verdict.matched_build
            else None
        ),
        "heard": {
            "lines": verdict.heard.lines,
            "reports": verdict.heard.reports,
            "events": verdict.heard.events,
            "notes": list(verdict.heard.notes),
            "explanation": verdict.heard.explanation,
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


def _manifest(manifest: Manifest, origin: Origin | None = None) -> dict[str, Any]:
    record: dict[str, Any] = manifest.identity.as_json()
    record["image_version"] = manifest.image_version
    record["recorded_at"] = manifest.recorded_at
    if origin is not None:  # a pulled build: where it was made (`stamp history pull`)
        record["origin"] = asdict(origin)
    return record


def _report(report: Report | None) -> dict[str, Any] | None:
    if report is None:
        return None
    record: dict[str, Any] = report.identity.known()
    record["source"] = report.source
    if report.image_version is not None:
        record["image_version"] = report.image_version
    if report.image_states is not None:
        record["image_states"] = report.image_states.to_json()
    if report.extra:
        record["extra"] = report.extra
    return record
