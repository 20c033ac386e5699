"""`stamp fleet --product P`: which build every device of a Particle product runs.

The survey is `stamp.device.fleet.survey`; this module picks the manifest, opens the
client (with Particle's request budget), shows progress on stderr, and turns the
`FleetReport` into a summary, a per-device table (`--json`) and the exit code.
"""

from __future__ import annotations

from collections import Counter
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

import click

from stamp.cli import exits
from stamp.cli.options import json_option, manifest_option, timeout_option

if TYPE_CHECKING:
    from stamp.artifact.history.records import Build
    from stamp.cli.app import Settings
    from stamp.cli.terminal import Progress
    from stamp.device.fleet import FleetDevice, FleetProgress, FleetReport

DEFAULT_TIMEOUT = 60.0
SHOWN_DEVICES = 20
"""Devices listed by name in the text report (all of them are in --json)."""
PLAIN_PROGRESS_EVERY = 5.0
"""Seconds between progress lines when stderr is not a terminal."""

STATUS_WORDS = {
    "expected": "run the expected build",
    "other": "run another known build",
    "unknown": "run an unknown build",
    "silent": "online but silent",
    "offline": "offline",
    "never_seen": "never seen by the cloud",
}


@click.command("fleet")
@click.option("--product", required=True, metavar="P", help="The Particle product id or slug.")
@click.option("--group", metavar="G", help="Only the product's devices in this group.")
@manifest_option(
    "The NAME.stamp.json of the build the fleet should run. Default: the newest "
    "build in this checkout's build history."
)
@timeout_option(
    DEFAULT_TIMEOUT,
    "Seconds to wait at most; the report comes as soon as every online device is settled.",
)
@click.option(
    "--listen",
    "listen_first",
    type=click.FloatRange(min=0),
    default=3.0,
    show_default=True,
    metavar="S",
    help="Seconds to listen for the devices' own reports before reading the `stamp` "
    "variable of those still silent.",
)
@json_option("Print the report, device by device, as JSON.")
@click.pass_obj
def fleet(
    settings: Settings,
    product: str,
    group: str | None,
    manifest_path: Path | None,
    timeout: float,
    listen_first: float,
    as_json: bool,
) -> int:
    """Say which build every device of a Particle product runs.

    Lists the product's devices (one group's with --group), listens to the product's
    event stream for `stamp` and `spark/device/app-hash` events, and reads the `stamp`
    variable of online devices that stay silent, within Particle's rate limit (10,000
    requests per 5 minutes; a 429 pauses every request for its Retry-After). Counts the
    devices that run the expected build, another build from the history (named), an
    unknown build; and those silent, offline, or never seen. Flags devices where
    Particle's firmware version disagrees with what the device reports.

    Exit status: 0 every online device runs the expected build, 1 some run another
    build, 3 some stayed silent (and none runs another build), 2 a bad product, group,
    config or manifest.

    \b
    Examples:
      stamp fleet --product 12345
      stamp fleet --product my-product --group beta --manifest build/app.stamp.json
      stamp fleet --product 12345 --timeout 300 --json > fleet.json

    \f
    Long for its --help text (the docstring).
    """
    import contextlib
    import os
    import sys

    from stamp.cli.history import history_for_naming
    from stamp.cli.terminal import Progress, print_json
    from stamp.cli.verify import expected_build
    from stamp.config import load_config
    from stamp.device.credentials import find_api_url, find_token
    from stamp.device.fleet import survey
    from stamp.device.transport.cloud_api import CloudClient
    from stamp.device.transport.rate import RequestBudget
    from stamp.errors import ConfigError

    config = load_config(settings.config_path)
    progress = Progress(sys.stderr, quiet=settings.verbosity < 0)
    token = find_token(os.environ, Path.home())
    api_url = find_api_url(os.environ, Path.home(), config.api_url)
    with contextlib.ExitStack() as stack:
        history = history_for_naming(config, required=manifest_path is None)
        if history is not None:
            stack.enter_context(history)
        expected = expected_build(manifest_path, history, progress)
        client = stack.enter_context(CloudClient(api_url, token, budget=RequestBudget()))
        progress.line(
            f"stamp: surveying product {product}"
            + (f", group {group}" if group else "")
            + f" for up to {timeout:g} s"
        )
        shown = _Shown(progress)
        try:
            report = survey(
                client,
                product,
                expected,
                history or [],
                timeout=timeout,
                group=group,
                listen_first=listen_first,
                on_progress=shown,
            )
        finally:
            progress.done()
    if group is not None and not report.devices:
        raise ConfigError(f"no device of product {product} is in group {group!r}")
    if as_json:
        print_json(fleet_record(report))
    else:
        render(report, sys.stdout)
    return exits.for_fleet(report.outcome)


class _Shown:
    """Progress on stderr: a redrawn line on a terminal, a line every few seconds otherwise."""

    def __init__(self, progress: Progress) -> None:
        self.progress = progress
        self.last = -PLAIN_PROGRESS_EVERY

    def __call__(self, state: FleetProgress) -> None:
        text = (
            f"waiting {state.elapsed:.0f} s · {state.settled}/{state.devices} settled, "
            f"{state.identified} identified, {state.reading} variable reads, "
            f"{state.events} events"
        )
        if self.progress.tty:
            self.progress.status(text)
        elif state.elapsed - self.last >= PLAIN_PROGRESS_EVERY:
            self.last = state.elapsed
            self.progress.line(f"stamp: {text}")


def summary(report: FleetReport) -> str:
    """The one line that answers the question, e.g. "FLEET OK: 240 of 240 online devices
    run the expected build (edit 12)"."""
    from stamp.cli.verdict_words import build_summary
    from stamp.device.fleet import DeviceStatus, FleetOutcome

    online = sum(1 for d in report.devices if d.status.value not in _ABSENT)
    good = report.count(DeviceStatus.EXPECTED)
    head = {
        FleetOutcome.ALL_EXPECTED: "FLEET OK",
        FleetOutcome.MISMATCH: "FLEET MISMATCH",
        FleetOutcome.SILENT: "FLEET INCOMPLETE",
    }[report.outcome]
    where = f"product {report.product}" + (f" group {report.group}" if report.group else "")
    text = (
        f"{head}: {good} of {online} online devices of {where} run the expected build "
        f"({build_summary(report.expected)})"
    )
    other = report.count(DeviceStatus.OTHER) + report.count(DeviceStatus.UNKNOWN)
    silent = report.count(DeviceStatus.SILENT)
    if other:
        text += f"; {other} run another build"
    if silent:
        text += f"; {silent} stayed silent"
    return text


_ABSENT = frozenset({"offline", "never_seen"})


def render(report: FleetReport, stream: TextIO, *, now: datetime | None = None) -> None:
    """The summary, the count of each kind, the other builds by name, the devices to see."""
    from stamp.cli.terminal import paint_label
    from stamp.device.fleet import DeviceStatus, FleetOutcome

    colour = {
        FleetOutcome.ALL_EXPECTED: "green",
        FleetOutcome.MISMATCH: "red",
        FleetOutcome.SILENT: "yellow",
    }[report.outcome]
    stream.write(paint_label(summary(report), colour, stream) + "\n")
    builds: Counter[str] = Counter(
        _build_words(d.build, now) for d in report.devices if d.build is not None
    )
    for status in DeviceStatus:
        stream.write(f"  {report.count(status):6d}  {STATUS_WORDS[status.value]}\n")
        if status is DeviceStatus.OTHER:
            for words, count in builds.most_common():
                stream.write(f"  {count:6d}    {words}\n")
    disagree = report.disagreeing
    if disagree:
        stream.write(
            f"  Particle's firmware version disagrees with what {len(disagree)} devices report:\n"
        )
        for d in disagree[:SHOWN_DEVICES]:
            stream.write(f"    {d.device.info.label}: {_cloud_words(d)}\n")
    odd = [
        d
        for d in report.devices
        if d.status in (DeviceStatus.OTHER, DeviceStatus.UNKNOWN, DeviceStatus.SILENT)
    ]
    for d in odd[:SHOWN_DEVICES]:
        stream.write(f"  {d.device.info.label}: {_device_words(d, now)}\n")
    if len(odd) > SHOWN_DEVICES:
        stream.write(f"  … and {len(odd) - SHOWN_DEVICES} more (--json lists every device)\n")
    if report.timed_out:
        stream.write(f"  (the survey ended at its {report.timeout:g} s timeout)\n")
    stream.flush()


def _build_words(build: Build, now: datetime | None) -> str:
    from stamp.cli.verdict_words import age_words, build_summary, origin_words

    parts = [build_summary(build.manifest)]
    if build.pulled_from is not None:
        parts.append(origin_words(build.origin))
    age = age_words(build.manifest.recorded_at, now)
    if age:
        parts.append(age)
    return ", ".join(parts)


def _device_words(d: FleetDevice, now: datetime | None) -> str:
    from stamp.cli.verdict_words import identity_summary
    from stamp.device.fleet import DeviceStatus

    if d.status is DeviceStatus.OTHER and d.build is not None:
        return f"runs {_build_words(d.build, now)}"
    if d.status is DeviceStatus.UNKNOWN and d.reported is not None:
        return f"runs a build not in the history ({identity_summary(d.reported.identity)})"
    reason = {
        "no_variable": "no stamp event and no stamp variable",
        "unreachable": "its stamp variable could not be read",
        "inconclusive": "its report cannot confirm a build",
        "waiting": "nothing heard before the timeout",
    }
    return f"silent: {reason[d.silence.value] if d.silence else 'nothing heard'}"


def _cloud_words(d: FleetDevice) -> str:
    claimed = d.device.firmware_version
    target = d.device.target_version
    said = f"Particle says firmware version {claimed}" + (
        f" (targeted: {target})" if target is not None else ""
    )
    if d.reported_version is not None:
        return f"{said}; the device reports a build of version {d.reported_version}"
    which = "the expected" if d.status.value == "expected" else "another"
    return f"{said}; the device reports {which} build"


def fleet_record(report: FleetReport) -> dict[str, Any]:
    """The record of `stamp fleet --json`: counts, and one entry per device."""
    from stamp.cli.json_records import manifest_record, report_record
    from stamp.device.fleet import DeviceStatus

    def device(d: FleetDevice) -> dict[str, Any]:
        info = d.device.info
        return {
            "id": info.id,
            "name": info.name,
            "status": d.status.value,
            "online": d.online,
            "groups": list(d.device.groups),
            "last_heard": info.last_heard,
            "reported": report_record(d.reported),
            "build": manifest_record(d.build.manifest, d.build.origin) if d.build else None,
            "silence": d.silence.value if d.silence else None,
            "heard_after": round(d.heard_after, 3) if d.heard_after is not None else None,
            "particle": {
                "firmware_version": d.device.firmware_version,
                "desired_firmware_version": d.device.desired_firmware_version,
                "targeted_firmware_release_version": d.device.targeted_firmware_release_version,
                "view": d.cloud_view.value,
            },
            "reported_version": d.reported_version,
        }

    return {
        "status": report.outcome.value,
        "message": summary(report),
        "product": report.product,
        "group": report.group,
        "expected": manifest_record(report.expected),
        "counts": {status.value: report.count(status) for status in DeviceStatus},
        "particle_disagrees": len(report.disagreeing),
        "devices": [device(d) for d in report.devices],
        "elapsed": round(report.elapsed, 3),
        "timeout": report.timeout,
        "timed_out": report.timed_out,
        "events": report.events,
        "variable_reads": report.variable_reads,
        "rate_limited": report.rate_limited,
    }
