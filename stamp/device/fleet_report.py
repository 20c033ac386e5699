"""The records of a fleet survey (`stamp.device.fleet`): what each device runs, and why.

Enums, frozen dataclasses and the cloud cross-check (`cloud_view`); `stamp.cli.fleet`
turns them into words, a table and an exit code.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from stamp.artifact.history.records import Build
from stamp.artifact.manifest import Manifest
from stamp.device.report_line import Report
from stamp.device.transport.cloud_devices import ProductDevice
from stamp.identity import KeyComparison


class DeviceStatus(Enum):
    """What a device of the fleet runs, as far as stamp could tell."""

    EXPECTED = "expected"
    """It reported the expected build."""
    OTHER = "other"
    """It reported another build that the history knows (named)."""
    UNKNOWN = "unknown"
    """It reported a build that is neither the expected one nor in the history."""
    SILENT = "silent"
    """Online, but nothing it said identified a build before the end."""
    OFFLINE = "offline"
    """Offline all along (the cloud has heard from it before)."""
    NEVER_SEEN = "never_seen"
    """Offline, and the cloud has never heard from it."""


MISMATCHING = (DeviceStatus.OTHER, DeviceStatus.UNKNOWN)


class Silence(Enum):
    """Why an online device stayed SILENT."""

    NO_VARIABLE = "no_variable"
    """Its `stamp` variable read gave nothing (no such variable, or no answer: 404/408)."""
    UNREACHABLE = "unreachable"
    """Its variable read failed (the cloud did not answer)."""
    INCONCLUSIVE = "inconclusive"
    """It reported, but nothing it reported can confirm or refute a build."""
    WAITING = "waiting"
    """The survey ended before its variable was read or answered."""


class CloudView(Enum):
    """Particle's own view of a device set against what the device reports."""

    NO_CLAIM = "no_claim"
    """Nothing to compare: no report, or the cloud names no version."""
    AGREES = "agrees"
    """The cloud's firmware version fits the build the device reports."""
    DISAGREES = "disagrees"
    """The cloud believes the device runs one version; the device reports another."""


class FleetOutcome(Enum):
    """The fleet's verdict."""

    ALL_EXPECTED = "all_expected"
    """Every online device runs the expected build."""
    MISMATCH = "mismatch"
    """At least one device runs another build."""
    SILENT = "silent"
    """Some online devices stayed silent; none runs another build."""


@dataclass(frozen=True)
class FleetDevice:
    """One device of the fleet and what it runs."""

    device: ProductDevice
    """The device as the product's device list described it."""
    status: DeviceStatus
    """What it runs."""
    online: bool
    """Online at the end of the survey (as the cloud said, or its events showed)."""
    reported: Report | None = None
    """The report its status rests on (SILENT: the last inconclusive one, if any)."""
    compared: tuple[KeyComparison, ...] = ()
    """The reported keys compared with the expected build's."""
    build: Build | None = None
    """OTHER: the build of the history it runs."""
    heard_after: float | None = None
    """Seconds from the survey's start to the report."""
    silence: Silence | None = None
    """SILENT: why."""
    cloud_view: CloudView = CloudView.NO_CLAIM
    """Particle's firmware version against the device's report."""
    reported_version: int | None = None
    """The product firmware version of the build it reports, when the manifest says."""


@dataclass(frozen=True)
class FleetReport:
    """The answer to "which build does every device of the product run?"."""

    product: str
    """The product id or slug surveyed."""
    group: str | None
    """The group surveyed (None: every device)."""
    expected: Manifest
    """The build the devices should run."""
    devices: tuple[FleetDevice, ...]
    """Every device surveyed, in the cloud's order."""
    elapsed: float
    """Seconds from the start to the end of the survey."""
    timeout: float
    """The longest it was willing to wait."""
    timed_out: bool
    """It ended at the timeout with online devices still unsettled."""
    events: int = 0
    """Events the product stream delivered."""
    variable_reads: int = 0
    """`stamp` variables read."""
    rate_limited: int = 0
    """429 answers that paused the requests."""
    last_report_after: float | None = None
    """Seconds from the start to the last report that settled a device."""

    def count(self, status: DeviceStatus) -> int:
        return sum(1 for d in self.devices if d.status is status)

    @property
    def outcome(self) -> FleetOutcome:
        if any(d.status in MISMATCHING for d in self.devices):
            return FleetOutcome.MISMATCH
        if any(d.status is DeviceStatus.SILENT for d in self.devices):
            return FleetOutcome.SILENT
        return FleetOutcome.ALL_EXPECTED

    @property
    def disagreeing(self) -> tuple[FleetDevice, ...]:
        """Devices whose Particle view disagrees with their report."""
        return tuple(d for d in self.devices if d.cloud_view is CloudView.DISAGREES)


@dataclass(frozen=True)
class FleetProgress:
    """How far a survey is, for a progress line."""

    elapsed: float
    """Seconds since the start."""
    devices: int
    """Devices surveyed."""
    settled: int
    """Devices settled so far (identified, offline, or silent after their read)."""
    identified: int
    """Devices whose build is known."""
    reading: int
    """Variable reads queued or in flight."""
    events: int
    """Events heard."""


def cloud_view(device: ProductDevice, status: DeviceStatus, version: int | None) -> CloudView:
    """Particle's firmware version for `device` against the build it reports.

    With the reported build's product version known (its manifest's module suffix), the
    two must be equal. Without it, Particle's claim that the device runs the version it
    targets must match whether it reports the expected build (taken as the release).
    """
    claimed = device.firmware_version
    if status not in (DeviceStatus.EXPECTED, DeviceStatus.OTHER, DeviceStatus.UNKNOWN):
        return CloudView.NO_CLAIM
    if claimed is None:
        return CloudView.NO_CLAIM
    if version is not None:
        return CloudView.AGREES if claimed == version else CloudView.DISAGREES
    target = device.target_version
    if target is None:
        return CloudView.NO_CLAIM
    on_target = claimed == target
    return (
        CloudView.AGREES if on_target == (status is DeviceStatus.EXPECTED) else CloudView.DISAGREES
    )


def product_version(manifest: Manifest | None) -> int | None:
    """The product firmware version in a build's module suffix, when its manifest has it."""
    if manifest is None or manifest.particle is None:
        return None
    version = manifest.particle.get("product_version")
    return version if isinstance(version, int) and not isinstance(version, bool) else None
