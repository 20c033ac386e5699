"""Which build every device of a Particle product runs (SPEC section 11): `survey`.

`survey` listens to the product's event stream, lists the product's devices (one
group's, if asked), and then waits: a device's `stamp` event, or Device OS's
`spark/device/app-hash` (published after a boot with a changed app), says what it runs;
`spark/status` whether it is online. An online device still silent after `listen_first`
seconds (or BOOT_GRACE after it came online) gets its `stamp` variable read, by a few
threads through one `RequestBudget` on the client (Particle's 10,000 requests per 5
minutes; a 429 pauses them all for its Retry-After). The survey ends as soon as every
online device is settled (identified, or its variable read gave nothing), or at the
timeout; offline devices do not hold it up.

Each report is judged by `stamp.device.verify.assess` against the expected manifest, and
another build is named from the history (`named_build`). Particle's own view, the
product firmware version it believes the device runs against the one it targets, is
set against what the device itself reports (`CloudView`).

Memory does not grow with the number of events: each event updates one device's
fixed-size slot and is dropped, and the stream's queue is bounded (the reader waits).
Outcomes are values (`stamp.device.fleet_report`); the words are `stamp.cli.fleet`'s.
"""

from __future__ import annotations

import queue
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from enum import Enum
from functools import partial

from stamp.artifact.history.records import Build
from stamp.artifact.manifest import Manifest
from stamp.device.fleet_report import (
    CloudView,
    DeviceStatus,
    FleetDevice,
    FleetOutcome,
    FleetProgress,
    FleetReport,
    Silence,
    cloud_view,
    product_version,
)
from stamp.device.report_line import Report, ReportError, parse_json_report
from stamp.device.transport.base import Clock, HeardKind, Signal, monotonic
from stamp.device.transport.cloud import (
    RECONNECT_DELAY,
    STAMP_VARIABLE,
    NewsKind,
    StreamNews,
    StreamReader,
)
from stamp.device.transport.cloud_api import IDLE_TIMEOUT, VARIABLE_WAIT, CloudClient
from stamp.device.transport.cloud_devices import ProductDevice
from stamp.device.transport.cloud_events import heard_from_event
from stamp.device.verify import History, VerdictStatus, assess, named_build
from stamp.errors import DeviceUnreachable
from stamp.identity import KeyComparison

__all__ = ["CloudView", "DeviceStatus", "FleetDevice", "FleetOutcome", "FleetProgress"]
__all__ += ["FleetReport", "Silence", "cloud_view", "survey"]

LISTEN_FIRST = 3.0
"""Seconds to listen for devices' own reports before reading the variable of the silent."""
BOOT_GRACE = 3.0
"""Seconds a device that came online gets to publish its `stamp` event by itself."""
VARIABLE_READERS = 8
"""Variable reads in flight at once (a silent device holds one for up to 30 s)."""
STREAM_QUEUE = 1000
"""Events read ahead of processing at most."""
PROGRESS_EVERY = 0.5
"""Seconds between progress callbacks."""
_POLL = 0.05


class _Read(Enum):
    """Where a device's variable read is."""

    NOT_YET = "not_yet"
    """Not asked for yet (its events may still settle it)."""
    QUEUED = "queued"
    """Asked for; waiting for a free reader."""
    DONE = "done"
    """Answered, or given up."""


class _Slot:
    """One device's state during a survey (fixed size, whatever the events)."""

    __slots__ = (
        "build",
        "compared",
        "device",
        "eligible_at",
        "heard_after",
        "online",
        "read",
        "report",
        "silence",
        "status",
    )

    def __init__(self, device: ProductDevice, eligible_at: float) -> None:
        self.device = device
        self.online = device.info.online
        self.status: DeviceStatus | None = None
        self.report: Report | None = None
        self.compared: tuple[KeyComparison, ...] = ()
        self.build: Build | None = None
        self.heard_after: float | None = None
        self.silence: Silence | None = None
        self.read = _Read.NOT_YET
        self.eligible_at = eligible_at

    @property
    def identified(self) -> bool:
        return self.status is not None

    @property
    def pending(self) -> bool:
        """Online, not identified, and its variable read not done: worth waiting for."""
        return self.online and self.status is None and self.read is not _Read.DONE


_Result = tuple[str, "Future[str | None]"]


def survey(
    client: CloudClient,
    product: str,
    expected: Manifest,
    history: History,
    *,
    timeout: float,
    group: str | None = None,
    listen_first: float = LISTEN_FIRST,
    readers: int = VARIABLE_READERS,
    clock: Clock = monotonic,
    on_progress: Callable[[FleetProgress], None] | None = None,
    idle_timeout: float = IDLE_TIMEOUT,
    reconnect_delay: float = RECONNECT_DELAY,
) -> FleetReport:
    """Find out which build every device of `product` (in `group`) runs.

    Errors the survey cannot go on from propagate as StampErrors: a rejected token, an
    unknown product, a cloud that cannot be reached for the device list.
    """
    run = _Survey(client, product, expected, history, clock, timeout, listen_first)
    reader = StreamReader(
        client,
        None,
        product=product,
        reconnect_delay=reconnect_delay,
        idle_timeout=idle_timeout,
        max_queued=STREAM_QUEUE,
    )
    reader.start()  # before the list: a device that boots meanwhile is not missed
    pool = ThreadPoolExecutor(max(1, readers), thread_name_prefix="stamp-fleet-variable")
    try:
        run.list_devices(group)
        run.wait(reader.signals, pool, on_progress)
        run.refresh_view(group)
    finally:
        reader.stop()
        pool.shutdown(wait=False, cancel_futures=True)
    return run.report(group, client)


@dataclass(eq=False)
class _Survey:
    """The state of one survey: a slot per device, and what was counted."""

    client: CloudClient
    product: str
    expected: Manifest
    history: History
    clock: Clock
    timeout: float
    listen_first: float
    """Seconds to listen before the first reads (at most a quarter of the timeout)."""
    slots: dict[str, _Slot] = field(default_factory=dict, init=False)
    results: queue.SimpleQueue[_Result] = field(default_factory=queue.SimpleQueue, init=False)
    events: int = field(default=0, init=False)
    reads: int = field(default=0, init=False)
    in_flight: int = field(default=0, init=False)
    timed_out: bool = field(default=False, init=False)
    changed: bool = field(default=True, init=False)
    """Something came in since the slots were last looked over."""
    last_report: float | None = field(default=None, init=False)

    def __post_init__(self) -> None:
        self.start = self.clock()
        self.deadline = self.start + self.timeout
        self.listen_first = max(0.0, min(self.listen_first, self.timeout / 4))
        self._progress_at = self.start

    def list_devices(self, group: str | None) -> None:
        eligible = self.start + self.listen_first
        for device in self.client.list_product_devices(self.product, group=group):
            # The cloud filters by group too; this keeps the answer right if it did not.
            if group is None or group in device.groups:
                self.slots.setdefault(device.info.id, _Slot(device, eligible))

    def refresh_view(self, group: str | None) -> None:
        """Read the device list again, so that Particle's view is as fresh as the reports
        it is set against (a rollout changes it while the survey listens)."""
        try:
            for device in self.client.list_product_devices(self.product, group=group):
                slot = self.slots.get(device.info.id)
                if slot is not None:
                    slot.device = device
        except DeviceUnreachable:
            pass  # the view from the start stands

    def wait(
        self,
        news: queue.Queue[StreamNews],
        pool: ThreadPoolExecutor,
        on_progress: Callable[[FleetProgress], None] | None,
    ) -> None:
        """Take in events and variable reads until every online device is settled.

        The slots are looked over (O(devices)) only when something came in or a device's
        variable became due, not on every idle poll."""
        due = self.start  # when the next variable read falls due
        while True:
            now = self.clock()
            if self.changed or now >= due:
                self.changed = False
                due = self._queue_reads(now, pool)
                if not any(slot.pending for slot in self.slots.values()):
                    break
            if now >= self.deadline:
                self.timed_out = True
                break
            try:
                self._take(news.get(timeout=max(0.0, min(_POLL, self.deadline - now))))
                while True:
                    self._take(news.get_nowait())
            except queue.Empty:
                pass
            while True:
                try:
                    device_id, future = self.results.get_nowait()
                except queue.Empty:
                    break
                self._read_done(device_id, future)
                self.changed = True
            if on_progress is not None and self.clock() - self._progress_at >= PROGRESS_EVERY:
                self._progress_at = self.clock()
                on_progress(self.progress())

    def progress(self) -> FleetProgress:
        slots = self.slots.values()
        return FleetProgress(
            elapsed=self.clock() - self.start,
            devices=len(self.slots),
            settled=sum(1 for s in slots if not s.pending),
            identified=sum(1 for s in slots if s.identified),
            reading=self.in_flight,
            events=self.events,
        )

    # -- what comes in ---------------------------------------------------------------

    def _take(self, item: StreamNews) -> None:
        if item.kind is NewsKind.FATAL and item.error is not None:
            raise item.error
        if item.kind is not NewsKind.EVENT or item.event is None:
            return  # connected / dropped / limited: the reader reconnects by itself
        self.events += 1
        slot = self.slots.get((item.event.coreid or "").lower())
        if slot is None:
            return  # another group's device, or the account's own publish
        self.changed = True
        now = self.clock()
        heard = heard_from_event(item.event, now)
        if heard.signal is Signal.WENT_OFFLINE:
            slot.online = False
        elif heard.signal is Signal.CAME_ONLINE:
            slot.online = True
            if slot.read is _Read.DONE:  # it rebooted: it may report by itself now
                slot.read = _Read.NOT_YET
            slot.eligible_at = now + BOOT_GRACE
        elif heard.kind is HeardKind.REPORT and heard.report is not None:
            slot.online = True
            self._judge(slot, heard.report, now)

    def _judge(self, slot: _Slot, report: Report, now: float) -> None:
        status, compared = assess(self.expected, report)
        if status is None:
            if slot.status is None:
                slot.report, slot.compared, slot.silence = report, compared, Silence.INCONCLUSIVE
            return
        build = named_build(self.history, report) if status is VerdictStatus.MISMATCH else None
        if status is VerdictStatus.VERIFIED:
            slot.status = DeviceStatus.EXPECTED
        else:
            slot.status = DeviceStatus.OTHER if build is not None else DeviceStatus.UNKNOWN
        slot.report, slot.compared, slot.build = report, compared, build
        slot.heard_after = now - self.start
        slot.silence = None
        self.last_report = slot.heard_after

    # -- variable reads --------------------------------------------------------------

    def _queue_reads(self, now: float, pool: ThreadPoolExecutor) -> float:
        """Queue the reads that are due; returns when the next one falls due."""
        due = self.deadline
        for slot in self.slots.values():
            if not slot.pending or slot.read is not _Read.NOT_YET:
                continue
            if slot.eligible_at > now:
                due = min(due, slot.eligible_at)
                continue
            slot.read = _Read.QUEUED
            self.in_flight += 1
            device_id = slot.device.info.id
            future = pool.submit(self._read, device_id)
            future.add_done_callback(partial(self._queue_result, device_id))
        return due

    def _queue_result(self, device_id: str, future: Future[str | None]) -> None:
        self.results.put((device_id, future))

    def _read(self, device_id: str) -> str | None:
        wait = max(_POLL, min(VARIABLE_WAIT, self.deadline - self.clock()))
        return self.client.get_variable(device_id, STAMP_VARIABLE, wait=wait)

    def _read_done(self, device_id: str, future: Future[str | None]) -> None:
        self.in_flight -= 1
        slot = self.slots[device_id]
        slot.read = _Read.DONE
        if future.cancelled():
            return
        self.reads += 1
        try:
            value = future.result()
        except DeviceUnreachable:
            if slot.status is None:
                slot.silence = Silence.UNREACHABLE
            return
        if value is None:
            if slot.status is None and slot.silence is None:
                slot.silence = Silence.NO_VARIABLE
            return
        try:
            report = parse_json_report(value, "cloud variable stamp")
        except ReportError:
            if slot.status is None:
                slot.silence = Silence.INCONCLUSIVE
            return
        self._judge(slot, report, self.clock())

    # -- the answer ------------------------------------------------------------------

    def report(self, group: str | None, client: CloudClient) -> FleetReport:
        budget = client.budget
        return FleetReport(
            product=self.product,
            group=group,
            expected=self.expected,
            devices=tuple(self._device(slot) for slot in self.slots.values()),
            elapsed=self.clock() - self.start,
            timeout=self.timeout,
            timed_out=self.timed_out,
            events=self.events,
            variable_reads=self.reads,
            rate_limited=budget.limited if budget is not None else 0,
            last_report_after=self.last_report,
        )

    def _device(self, slot: _Slot) -> FleetDevice:
        status = slot.status
        silence = None
        if status is None:
            if slot.online:
                status, silence = DeviceStatus.SILENT, slot.silence or Silence.WAITING
            elif slot.device.info.last_heard is None:
                status = DeviceStatus.NEVER_SEEN
            else:
                status = DeviceStatus.OFFLINE
        version = product_version(self.expected if status is DeviceStatus.EXPECTED else None)
        if status is DeviceStatus.OTHER and slot.build is not None:
            version = product_version(slot.build.manifest)
        return FleetDevice(
            device=slot.device,
            status=status,
            online=slot.online,
            reported=slot.report,
            compared=slot.compared,
            build=slot.build,
            heard_after=slot.heard_after,
            silence=silence,
            cloud_view=cloud_view(slot.device, status, version),
            reported_version=version,
        )
