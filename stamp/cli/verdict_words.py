"""The words for a verdict and a flash attempt: what `stamp verify` and `stamp flash` print.

`VERIFIED: device runs edit 111 (git 1a2b3c4d, build-id 5f3a…)`,
`MISMATCH: device runs edit 109 (git 1a2b3c4, built 25 min ago); expected edit 111`, or
`NO REPORT: …` with what was heard and what the silence usually means.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any, TextIO

from stamp.artifact.history.records import Origin
from stamp.artifact.manifest import Manifest
from stamp.cli.heard_words import heard_text
from stamp.cli.terminal import paint_label
from stamp.device.esp_boot import HASH_LEN_OPTION
from stamp.device.flash import Attempt
from stamp.device.image_state import RunState
from stamp.device.verify import HeardSummary, SilenceCause, Verdict, VerdictStatus
from stamp.identity import HASH_KEYS, Identity, KeyComparison
from stamp.record import GIT_UNKNOWN

SHORT_HEX = 8
"""Hex digits shown of a hash in a sentence (comparisons always use all of them)."""


def verdict_message(verdict: Verdict, *, now: datetime | None = None) -> str:
    """The one sentence for the verdict, e.g. `MISMATCH: device runs edit 109 (…)`."""
    now = now or datetime.now(UTC)
    if verdict.status is VerdictStatus.VERIFIED:
        text = f"VERIFIED: device runs {_verified_build(verdict)}"
        if _run_state(verdict) is RunState.UNCONFIRMED:
            text += f" ({RUN_STATE_WORDS[RunState.UNCONFIRMED]}; allowed by --allow-unconfirmed)"
        return text
    if verdict.status is VerdictStatus.UNCONFIRMED:
        return (
            f"UNCONFIRMED: device runs {_verified_build(verdict)} as a test image: "
            f"{RUN_STATE_WORDS[RunState.UNCONFIRMED]} (--allow-unconfirmed accepts that)"
        )
    if verdict.status is VerdictStatus.MISMATCH:
        device_runs = _reported_build(verdict, now)
        text = f"MISMATCH: device runs {device_runs}; expected {_expected_build(verdict)}"
        return text + _where_expected(verdict)
    return f"NO REPORT: {_silence(verdict)}"


CAUSE_WORDS = {
    SilenceCause.FLASH_DID_NOT_TAKE: (
        "device online, no stamp event; app hash unchanged since last session, "
        "which usually means the flash did not take"
    ),
}
"""What a silence most likely means, in words (`stamp.device.verify.SilenceCause`)."""


def explanation(heard: HeardSummary) -> str | None:
    """The words for what the silence most likely means, None when stamp cannot tell."""
    return CAUSE_WORDS[heard.cause] if heard.cause is not None else None


RUN_STATE_WORDS = {
    RunState.CONFIRMED: "running, confirmed",
    RunState.UNCONFIRMED: "running, will revert at next reset unless confirmed",
    RunState.PENDING: "not yet running (marked for test: it runs after the next reset)",
    RunState.PENDING_PERMANENT: "not yet running (it is swapped in for good at the next reset)",
    RunState.STORED: "not running (uploaded to a slot but not marked to run)",
    RunState.ABSENT: "on no slot of the device",
}
"""What an MCUboot image's place on the device means, in words (`stamp.device.image_state`)."""


def _run_state(verdict: Verdict) -> RunState | None:
    """Where the expected MCUboot image stands on the device, when it reported slots."""
    report = verdict.reported
    wanted = verdict.expected.identity.mcuboot_hash
    if report is None or report.image_states is None or wanted is None:
        return None
    return report.image_states.run_state(wanted)


def _where_expected(verdict: Verdict) -> str:
    """For an SMP device: where the expected image is, if it is on the device at all."""
    state = _run_state(verdict)
    if state is None or state is RunState.ABSENT:
        return ""
    report = verdict.reported
    assert report is not None and report.image_states is not None
    slot = report.image_states.find(verdict.expected.identity.mcuboot_hash or "")
    where = f" in slot {slot.slot}" if slot is not None else ""
    return f"; the expected image is{where}: {RUN_STATE_WORDS[state]}"


def _unstamped(manifest: Manifest, fallback: str) -> str:
    """A build without a stamp record: by its MCUboot version when it has one."""
    version = manifest.identity.image_version
    return f"image {version}" if version else fallback


VERDICT_COLOURS = {
    VerdictStatus.VERIFIED: "green",
    VerdictStatus.MISMATCH: "red",
    VerdictStatus.NO_REPORT: "yellow",
    VerdictStatus.UNCONFIRMED: "yellow",
}


def painted_verdict(verdict: Verdict, stream: TextIO, *, now: datetime | None = None) -> str:
    """The verdict's sentence with its label coloured for `stream` (plain off a terminal)."""
    return paint_label(verdict_message(verdict, now=now), VERDICT_COLOURS[verdict.status], stream)


def attempt_summary(attempt: Attempt, *, now: datetime | None = None) -> str:
    """One line for a flash attempt: its verdict, or why the flash failed."""
    if attempt.verdict is None:
        return f"FLASH FAILED: {attempt.flash_error}"
    verdict = attempt.verdict
    cause = explanation(verdict.heard)
    if verdict.status is VerdictStatus.NO_REPORT and cause:
        text = f"NO REPORT: {cause}"
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


_LABELS = {
    "build_id": "build-id",
    "app_hash": "app hash",
    "image_sha256": "image sha256",
    "elf_sha256": "ELF SHA-256",
    "mcuboot_hash": "MCUboot hash",
}
"""How a hash key is called in a sentence; any other key by its name with spaces."""


def label(key: str) -> str:
    return _LABELS.get(key, key.replace("_", " "))


def _hash_parts(
    identity: Mapping[str, Any], keys: Iterable[str], shown: Mapping[str, int] | None = None
) -> list[str]:
    """ "build-id 5f3a…" for each known key; `shown`: digits to show of a key (to reach the
    first digit that differs)."""
    parts = []
    for k in keys:
        value = identity.get(k)
        if value:
            digits = max(SHORT_HEX, (shown or {}).get(k, 0))
            parts.append(f"{label(k)} {value if len(value) <= digits else value[:digits] + '…'}")
    return parts


def _to_difference(verdict: Verdict) -> dict[str, int]:
    """For each differing hex key, the digits up to and including its first difference."""
    out = {}
    for c in verdict.differing:
        if isinstance(c.expected, str) and isinstance(c.reported, str):
            pairs = zip(c.expected.lower(), c.reported.lower(), strict=False)
            out[c.key] = next((i for i, (a, b) in enumerate(pairs) if a != b), 0) + 1
    return out


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
    name = (
        f"edit {identity['edit']}"
        if "edit" in identity
        else _unstamped(verdict.expected, _app_name(identity))
    )
    parts += [_digits_note(c) for c in verdict.compared if c.match and c.digits is not None]
    return f"{name} ({', '.join(parts)})" if parts else name


def _app_name(identity: Mapping[str, Any], otherwise: str = "the expected build") -> str:
    """An unstamped build by its ESP-IDF app description, e.g. "blink 1.0"."""
    if "project_name" not in identity:
        return otherwise
    return " ".join(str(identity[k]) for k in ("project_name", "app_version") if k in identity)


def _digits_note(c: KeyComparison) -> str:
    """ "16 of 64 digits compared, …": how much of a hash printed cut short was checked."""
    whole = len(c.expected)
    note = f"{c.digits} of {whole} digits compared"
    if c.key == "elf_sha256" and c.digits is not None and c.digits < whole:
        note += f"; {HASH_LEN_OPTION}={whole} in sdkconfig prints all {whole}"
    return note


def _reported_build(verdict: Verdict, now: datetime) -> str:
    report = verdict.reported
    assert report is not None
    build = verdict.matched_build
    if build is not None:
        identity = build.identity.known()
        parts = [_git_part(identity.get("git"), identity.get("dirty"))]
        if verdict.matched_origin is not None:  # pulled: "built by CI on host X, 3 days ago"
            parts += [origin_words(verdict.matched_origin), age_words(build.recorded_at, now)]
        else:
            parts.append(_age(build.recorded_at, now))
        name = (
            f"edit {build.identity.edit}"
            if build.identity.edit is not None
            else _unstamped(build, _app_name(identity, "an older build"))
        )
        details = [p for p in parts if p]
        if not details:
            details = _hash_parts(identity, HASH_KEYS)[:1]
        return f"{name} ({', '.join(details)})" if details else name
    identity = report.identity.known()
    parts = [
        f"edit {identity['edit']}" if "edit" in identity else None,
        _git_part(identity.get("git"), identity.get("dirty")),
        *_hash_parts(identity, HASH_KEYS, _to_difference(verdict)),
    ]
    if report.identity.image_version:
        parts.insert(0, f"version {report.identity.image_version}")
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
    name = (
        f"edit {identity['edit']}"
        if "edit" in identity
        else _unstamped(verdict.expected, _app_name(identity, "the manifest's build"))
    )
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
    parts += _hash_parts(
        identity, [k for k in HASH_KEYS if k in differing], _to_difference(verdict)
    )
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
    facts = [heard_text(note) for note in heard.notes]
    if heard.lines:
        line_note = _plural(heard.lines, "line") + " received"
        if heard.reports == 0:
            line_note += ", none was a report"
        facts.append(line_note)
    if heard.events:
        facts.append(_plural(heard.events, "other event"))
    if heard.reports and verdict.reported is not None:
        facts.append(_why_inconclusive(verdict))
    cause = explanation(heard)
    if cause:
        facts.append(cause)
    if verdict.unreachable:
        return f"{head} (heard: {', '.join(facts)})" if facts else head
    return f"{head}: {', '.join(facts) or 'heard nothing'}"


def _why_inconclusive(verdict: Verdict) -> str:
    report = verdict.reported
    assert report is not None
    count = _plural(verdict.heard.reports, "report")
    keys = ", ".join(report.identity.known()) or "no identity keys"
    short = next((c for c in verdict.compared if c.too_short), None)
    if short is not None:
        return (
            f"the device printed only {short.digits} of the {label(short.key)}'s "
            f"{len(short.expected)} digits: they match, but fewer than {short.needed} cannot "
            f"identify the build ({HASH_LEN_OPTION}={len(short.expected)} in sdkconfig prints all)"
        )
    if not verdict.compared:
        hint = ""
        if report.identity.app_hash is not None and verdict.expected.identity.app_hash is None:
            hint = " (make it with `stamp manifest ELF --bin BIN` to compare the app hash)"
        expected = verdict.expected.identity
        if report.identity.mcuboot_hash is not None and expected.mcuboot_hash is None:
            hint = (
                " (make it from the signed image, `stamp manifest ELF --bin zephyr.signed.bin`, "
                "to compare the MCUboot hash)"
            )
        return f"{count} heard, but the last ({keys}) shares no key with the manifest{hint}"
    return (
        f"{count} heard, but the last ({keys}) cannot confirm a build: that needs a matching "
        "build-id, app hash, or git and edit"
    )


def origin_words(origin: Origin | None) -> str:
    """Where a build was made: "built by CI on host ci-7", "built by ana on host laptop"."""
    if origin is None or (origin.host is None and origin.user is None and not origin.ci):
        return "built elsewhere"
    who = "CI" if origin.ci else origin.user
    text = "built" + (f" by {who}" if who else "")
    return text + (f" on host {origin.host}" if origin.host else "")


def age_words(recorded_at: str, now: datetime | None = None) -> str | None:
    """How long ago: "3 days ago", "25 min ago" (None for an unreadable time)."""
    age = _age(recorded_at, now or datetime.now(UTC))
    if age is None or not age.startswith("built "):
        return age
    rest = age.removeprefix("built ")
    return rest if rest.endswith("ago") or rest == "just now" else age


def build_summary(manifest: Manifest) -> str:
    """One build in one line of `stamp history list`: edit, git, dirty, short hashes."""
    return identity_summary(manifest.identity)


def identity_summary(known: Identity) -> str:
    """An identity in one line: edit, git, dirty, short hashes."""
    identity = known.known()
    parts = [f"edit {identity['edit']}" if "edit" in identity else "unstamped"]
    git = identity.get("git")
    if git is not None:
        parts.append("git unknown" if git == GIT_UNKNOWN else f"git {git[:SHORT_HEX]}")
    if identity.get("dirty"):
        parts.append("dirty")
    parts += _hash_parts(identity, HASH_KEYS)
    return ", ".join(parts)
