"""The simulated Particle Cloud of SPEC section 8: devices, their firmware, and their events.

`CloudSim` holds the state (devices, what each runs, who listens) and plays out an OTA
update the way the real cloud and Device OS do (`spark/flash/status` "started " then
"success ", offline, online, `spark/device/last_reset`, `spark/device/app-hash` only when
the hash changed, then the app's own `stamp` event). With probability `fail_rate` the
update fails the way SPEC section 1 describes: every event says success, and the device
boots its old firmware and says nothing about a new hash. `stamp.sim.cloud_http` puts the
HTTP API in front of it; this module has no sockets.

A module image becomes what a device runs in `stamp.sim.cloud_firmware`, events reach
their streams through `stamp.sim.cloud_streams`, and the steps of an update are played
out by `stamp.sim.scheduler`.
"""

from __future__ import annotations

import logging
import random
import secrets
import threading
import time
from collections import deque
from collections.abc import Callable
from contextlib import suppress
from dataclasses import dataclass
from functools import partial

from stamp.closing import Closing
from stamp.sim.cloud_firmware import Firmware, SimRefused, invalid_firmware, read_firmware
from stamp.sim.cloud_streams import (
    EVENT_TTL,
    SUBSCRIBER_LIMIT,
    StreamEnd,
    Subscriber,
    iso8601,
    sse_frame,
)
from stamp.sim.scheduler import Scheduler

log = logging.getLogger("stamp.sim.cloud")

PHOTON_PLATFORM_ID = 6
DEVICE_ID_BYTES = 12
"""Particle device ids are 24 hex digits."""
TOKEN_BYTES = 20
"""particle-cli tokens are 40 hex digits."""
STAMP_EVENT = "stamp"
STAMP_VARIABLE = "stamp"


@dataclass(frozen=True)
class SimTiming:
    """How long each step of an OTA update takes, in seconds (default: well under one)."""

    transfer: float = 0.1
    """From `spark/flash/status` "started " to "success " (the upload to the device)."""
    restart: float = 0.05
    """From "success " until the device drops offline to apply the update."""
    boot: float = 0.2
    """Offline until it is back online (the reboot)."""
    step: float = 0.02
    """Between the events a device publishes as it boots."""

    def scaled(self, factor: float) -> SimTiming:
        """Every delay multiplied by `factor` (tests use tiny ones)."""
        return SimTiming(
            transfer=self.transfer * factor,
            restart=self.restart * factor,
            boot=self.boot * factor,
            step=self.step * factor,
        )


@dataclass(frozen=True)
class DeviceSnapshot:
    """A simulated device as it is right now."""

    id: str
    """24 lowercase hex digits."""
    name: str
    """e.g. "sim_photon_1"."""
    online: bool
    """Connected to the cloud."""
    firmware: Firmware
    """What it runs."""
    updating: bool
    """An OTA update is under way."""
    last_heard: float
    """Wall-clock time of its last event or connection."""
    platform_id: int = PHOTON_PLATFORM_ID
    """Particle platform id (6: Photon)."""


@dataclass(frozen=True)
class FlashRecord:
    """One OTA update the simulator accepted, and how it will end."""

    device_id: str
    """The device flashed."""
    app_hash: str
    """The app hash of the uploaded image."""
    succeeded: bool
    """False: the device will boot its old firmware (the fail-rate draw)."""
    at: float
    """Wall-clock time the upload was accepted."""


@dataclass
class _Device:
    """Mutable state of one device; only touched under CloudSim._lock."""

    id: str
    name: str
    firmware: Firmware
    session_hash: str
    """App hash of the previous session: Device OS publishes app-hash only on a change."""
    online: bool = True
    updating: bool = False
    last_heard: float = 0.0
    platform_id: int = PHOTON_PLATFORM_ID

    def snapshot(self) -> DeviceSnapshot:
        return DeviceSnapshot(
            id=self.id,
            name=self.name,
            online=self.online,
            firmware=self.firmware,
            updating=self.updating,
            last_heard=self.last_heard,
            platform_id=self.platform_id,
        )


class CloudSim(Closing):
    """N simulated devices behind a Particle Cloud; thread-safe; close() when done."""

    def __init__(
        self,
        *,
        devices: int = 1,
        token: str | None = None,
        fail_rate: float = 0.0,
        seed: int | None = None,
        firmware: bytes | None = None,
        timing: SimTiming | None = None,
        wall_clock: Callable[[], float] = time.time,
        stream_limit: int = SUBSCRIBER_LIMIT,
    ) -> None:
        if devices < 0:
            raise ValueError("devices must be >= 0")
        if not 0.0 <= fail_rate <= 1.0:
            raise ValueError("fail_rate must be between 0 and 1")
        self.token = token if token is not None else secrets.token_hex(TOKEN_BYTES)
        self.fail_rate = fail_rate
        self.timing = timing or SimTiming()
        self._clock = wall_clock
        self._stream_limit = stream_limit
        # Separate streams of random numbers, so that for a seed the device ids do not
        # depend on --firmware, nor the failure sequence on the number of devices.
        id_rng, app_rng, self._fail_rng = (
            random.Random(f"{seed}:{use}") if seed is not None else random.Random()
            for use in ("devices", "apps", "flash")
        )
        initial = read_firmware(firmware) if firmware is not None else None
        now = self._clock()
        self._devices: dict[str, _Device] = {}
        for number in range(1, devices + 1):
            device_id = id_rng.getrandbits(8 * DEVICE_ID_BYTES).to_bytes(DEVICE_ID_BYTES).hex()
            # Without --firmware a device runs some app stamp cannot identify.
            runs = initial or Firmware(app_rng.getrandbits(256).to_bytes(32).hex(), report=None)
            self._devices[device_id] = _Device(
                id=device_id,
                name=f"sim_photon_{number}",
                firmware=runs,
                session_hash=runs.app_hash,
                last_heard=now,
                platform_id=runs.platform_id or PHOTON_PLATFORM_ID,
            )
        self._lock = threading.Lock()
        self._publish_lock = threading.Lock()
        self._subscribers: list[Subscriber] = []
        self._flashes: list[FlashRecord] = []
        self._throttle: deque[int] = deque()
        self._closed = False
        self._scheduler = Scheduler()

    # -- looking ---------------------------------------------------------------------

    @property
    def devices(self) -> list[DeviceSnapshot]:
        """Every device, in creation order."""
        with self._lock:
            return [device.snapshot() for device in self._devices.values()]

    def find(self, id_or_name: str) -> DeviceSnapshot | None:
        """A device by id (any case) or name, like the real API's `:deviceId` parameter."""
        with self._lock:
            device = self._find(id_or_name)
            return device.snapshot() if device else None

    @property
    def flashes(self) -> list[FlashRecord]:
        """Every accepted OTA update, in order."""
        with self._lock:
            return list(self._flashes)

    def subscriber_count(self) -> int:
        """Open event streams."""
        with self._lock:
            return len(self._subscribers)

    def settled(self) -> bool:
        """No update or boot is still playing out."""
        return self._scheduler.idle()

    def variable(self, id_or_name: str, name: str) -> str:
        """A cloud variable's value; SimRefused 408 offline, 404 unknown (as the real API)."""
        with self._lock:
            device = self._require(id_or_name)
            if not device.online:
                raise SimRefused(408, "Timed out.")
            if name != STAMP_VARIABLE or device.firmware.report is None:
                raise SimRefused(404, "Variable not found")
            return device.firmware.report

    # -- acting ------------------------------------------------------------------------

    def flash(self, id_or_name: str, image: bytes) -> FlashRecord:
        """Start an OTA update; the events follow on the scheduler. SimRefused when refused."""
        firmware = read_firmware(image)
        with self._lock:
            device = self._require(id_or_name)
            if firmware.platform_id != device.platform_id:
                raise invalid_firmware(
                    f"the firmware is for platform {firmware.platform_id}, the device is "
                    f"platform {device.platform_id}"
                )
            if not device.online:
                raise SimRefused(400, "Device is offline", errors=["Device is offline"])
            if device.updating:
                raise SimRefused(
                    400, "An update is already in progress", errors=["Update in progress"]
                )
            succeeded = self._fail_rng.random() >= self.fail_rate
            record = FlashRecord(device.id, firmware.app_hash, succeeded, self._clock())
            self._flashes.append(record)
            device.updating = True
            device_id = device.id
        log.info(
            "OTA to %s: %s (%s)", device_id, firmware.app_hash[:12], "ok" if succeeded else "fails"
        )
        self._play_update(device_id, firmware if succeeded else None)
        return record

    def install(self, id_or_name: str, image: bytes) -> None:
        """Make a device run `image` from now on, without an update or any event (tests)."""
        firmware = read_firmware(image)
        with self._lock:
            device = self._require(id_or_name)
            device.firmware = firmware
            device.session_hash = firmware.app_hash

    def reboot(self, id_or_name: str, reason: str = "pin_reset") -> None:
        """Restart a device: offline, online, last_reset, and its app's `stamp` event."""
        with self._lock:
            device_id = self._require(id_or_name).id
        self._go_offline(device_id)
        self._scheduler.after(self.timing.boot, lambda: self._boot(device_id, None, reason))

    def set_online(self, id_or_name: str, online: bool) -> None:
        """Connect or disconnect a device without a reboot (publishes `spark/status`)."""
        with self._lock:
            device = self._require(id_or_name)
            changed = device.online != online
            device.online = online
            device_id = device.id
        if changed:
            self.publish(device_id, "spark/status", "online" if online else "offline")

    def publish(
        self, id_or_name: str, name: str, data: str, *, ttl: int = EVENT_TTL, block: bool = False
    ) -> None:
        """Publish an event from a device to every matching stream.

        A stream more than `stream_limit` events behind is cut off, as the real cloud does
        with a reader that cannot keep up; `block=True` waits for it instead (load tests).
        """
        now = self._clock()
        with self._lock:
            device = self._require(id_or_name)
            device.last_heard = now
            device_id = device.id
            targets = [sub for sub in self._subscribers if sub.wants(device_id, name)]
        if not targets:
            return
        frame = sse_frame(name, data, device_id, iso8601(now), ttl)
        with self._publish_lock:  # every stream sees the events in the same order
            for sub in targets:
                sub.offer(frame, block=block)

    def publish_many(
        self, name: str, data: str, count: int, *, device: str | None = None, block: bool = True
    ) -> int:
        """`count` events, round-robin over every device (or from one); returns the count."""
        with self._lock:
            ids = [self._require(device).id] if device else list(self._devices)
        if not ids:
            return 0
        for n in range(count):
            self.publish(ids[n % len(ids)], name, data, block=block)
        return count

    # -- streams -----------------------------------------------------------------------

    def subscribe(self, device_id: str | None, prefix: str = "") -> Subscriber:
        """A new stream of the events of one device (or all) whose name starts with prefix."""
        sub = Subscriber(device_id, prefix, self._stream_limit)
        with self._lock:
            if self._closed:
                sub.end(StreamEnd.CLOSE)
            else:
                self._subscribers.append(sub)
        return sub

    def unsubscribe(self, sub: Subscriber) -> None:
        with self._lock, suppress(ValueError):
            self._subscribers.remove(sub)

    def drop_streams(self) -> int:
        """Cut every open event stream mid-way, as a network drop would; returns how many."""
        with self._lock:
            subs = list(self._subscribers)
        for sub in subs:
            sub.end(StreamEnd.DROP)
        return len(subs)

    def throttle(self, requests: int, retry_after: int = 1) -> None:
        """Answer the next `requests` API requests with 429 and this Retry-After (tests)."""
        with self._lock:
            self._throttle.extend([retry_after] * requests)

    def take_throttle(self) -> int | None:
        """The Retry-After for this request if it is to be throttled (HTTP layer)."""
        with self._lock:
            return self._throttle.popleft() if self._throttle else None

    def now(self) -> float:
        """The simulated cloud's wall-clock time (its events' published_at)."""
        return self._clock()

    def check_token(self, token: str | None) -> bool:
        return token is not None and secrets.compare_digest(token, self.token)

    # -- lifetime ----------------------------------------------------------------------

    def close(self) -> None:
        """Stop the devices and end every stream cleanly; idempotent."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            subs = list(self._subscribers)
        self._scheduler.close()
        for sub in subs:
            sub.end(StreamEnd.CLOSE)

    def __repr__(self) -> str:
        return f"CloudSim(devices={len(self._devices)}, fail_rate={self.fail_rate})"

    # -- the device side of an update ---------------------------------------------------

    def _play_update(self, device_id: str, new: Firmware | None) -> None:
        """Schedule what the cloud and the device publish; `new` None: the update fails."""
        t = self.timing
        steps: list[tuple[float, Callable[[], None]]] = [
            (0.0, lambda: self.publish(device_id, "spark/flash/status", "started ")),
            # "success" only means the transfer finished, never that the app runs (SPEC 1).
            (t.transfer, lambda: self.publish(device_id, "spark/flash/status", "success ")),
            (t.transfer + t.restart, lambda: self._go_offline(device_id)),
            (
                t.transfer + t.restart + t.boot,
                lambda: self._boot(device_id, new, "update"),
            ),
        ]
        for delay, action in steps:
            self._scheduler.after(delay, action)

    def _go_offline(self, device_id: str) -> None:
        with self._lock:
            self._devices[device_id].online = False
        self.publish(device_id, "spark/status", "offline")

    def _boot(self, device_id: str, new: Firmware | None, reason: str) -> None:
        """Back online: on `new` firmware, or on the old one when None (a failed update)."""
        with self._lock:
            device = self._devices[device_id]
            if new is not None:
                device.firmware = new
            device.online = True
            device.updating = False
            runs = device.firmware
            changed = runs.app_hash != device.session_hash
            device.session_hash = runs.app_hash
        self.publish(device_id, "spark/status", "online")
        events: list[tuple[str, str]] = [("spark/device/last_reset", reason)]
        if changed:  # Device OS stays silent about an unchanged hash (SPEC section 1)
            events.append(("spark/device/app-hash", runs.app_hash.upper()))
        if runs.report is not None:  # the app publishes its identity once after each boot
            events.append((STAMP_EVENT, runs.report))
        for number, (name, data) in enumerate(events, start=1):
            self._scheduler.after(
                self.timing.step * number, partial(self.publish, device_id, name, data)
            )

    # -- helpers -----------------------------------------------------------------------

    def _find(self, id_or_name: str) -> _Device | None:
        device = self._devices.get(id_or_name.lower())
        if device is not None:
            return device
        for device in self._devices.values():
            if device.name == id_or_name:
                return device
        return None

    def _require(self, id_or_name: str) -> _Device:
        device = self._find(id_or_name)
        if device is None:
            # The real cloud answers 403 for a device it does not know (and leaks the
            # token in `info`; this one never does).
            raise SimRefused(
                403, "Permission Denied", info="I didn't recognize that device name or ID"
            )
        return device


def device_summary(devices: list[DeviceSnapshot]) -> list[dict[str, str]]:
    """The `devices` list of the simulator's first stdout line."""
    return [{"id": d.id, "name": d.name} for d in devices]
