"""The simulated Particle Cloud of SPEC section 8: devices, their firmware, and their events.

`CloudSim` holds the state (accounts, products, devices, what each runs, who listens)
and plays out an OTA update the way the real cloud and Device OS do, in the variations
of `stamp.sim.cloud_ota` (`spark/flash/status` "started " then "success ", offline,
online, `spark/device/last_reset`, `spark/device/app-hash` only when the hash changed,
then the app's own `stamp` event). With probability `fail_rate` the update fails the way
SPEC section 1 describes: every event says success, and the device boots its old
firmware and says nothing about a new hash. `stamp.sim.cloud_http` puts the HTTP API in
front of it; this module has no sockets.

A module image becomes what a device runs in `stamp.sim.cloud_firmware`, the state lives
in `stamp.sim.cloud_model`, events reach their streams through `stamp.sim.cloud_streams`,
and the steps of an update are played out by `stamp.sim.scheduler`.
"""

from __future__ import annotations

import logging
import random
import secrets
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import replace

from stamp.closing import Closing
from stamp.sim.cloud_firmware import Firmware, SimRefused, invalid_firmware, read_firmware
from stamp.sim.cloud_life import DeviceLife
from stamp.sim.cloud_model import (
    FIRST_PRODUCT_ID,
    OTHER_OWNER,
    OWNER,
    FlashRecord,
    Product,
    SimDevice,
    SimTiming,
    make_devices,
)
from stamp.sim.cloud_ota import Variation, draw_style
from stamp.sim.cloud_product import ProductLife
from stamp.sim.cloud_streams import (
    EVENT_TTL,
    SUBSCRIBER_LIMIT,
    Hub,
    StreamEnd,
    Subscriber,
    iso8601,
    sse_frame,
)
from stamp.sim.scheduler import Scheduler

__all__ = ["CloudSim", "FlashRecord", "Product", "SimDevice", "SimTiming", "Variation"]

log = logging.getLogger("stamp.sim.cloud")

TOKEN_BYTES = 20
"""particle-cli tokens are 40 hex digits."""
STAMP_EVENT = "stamp"
STAMP_VARIABLE = "stamp"
UNKNOWN_DEVICE = "I didn't recognize that device name or ID"


class CloudSim(DeviceLife, ProductLife, Closing):
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
        products: int = 0,
        variation: Variation = Variation.SEEDED,
        other_token: str | None = None,
        functions: tuple[str, ...] = (),
    ) -> None:
        if devices < 0 or products < 0:
            raise ValueError("devices and products must be >= 0")
        if not 0.0 <= fail_rate <= 1.0:
            raise ValueError("fail_rate must be between 0 and 1")
        self.token = token if token is not None else secrets.token_hex(TOKEN_BYTES)
        self.other_token = other_token
        self.fail_rate = fail_rate
        self.timing = timing or SimTiming()
        self.variation = variation
        self._clock = wall_clock
        self._stream_limit = stream_limit
        # Separate streams of random numbers, so that for a seed the device ids do not
        # depend on --firmware, nor the failure sequence on the number of devices.
        id_rng, app_rng, self._fail_rng, self._style_rng = (
            random.Random(f"{seed}:{use}") if seed is not None else random.Random()
            for use in ("devices", "apps", "flash", "style")
        )
        initial = read_firmware(firmware) if firmware is not None else None
        self.products = [
            Product(FIRST_PRODUCT_ID + n, f"sim-product-{n + 1}") for n in range(products)
        ]
        self._devices = make_devices(
            devices,
            self.products,
            initial,
            id_rng=id_rng,
            app_rng=app_rng,
            now=self._clock(),
            other_account=other_token is not None,
            functions=functions,
        )
        self._lock = threading.Lock()
        self._hub = Hub(stream_limit)
        self._flashes: list[FlashRecord] = []
        self._throttle: deque[int] = deque()
        self._closed = False
        self._scheduler = Scheduler()

    # -- looking ---------------------------------------------------------------------

    @property
    def devices(self) -> list[SimDevice]:
        """Every device of the main account, in creation order."""
        return self.devices_of(OWNER)

    def devices_of(self, owner: str, product_id: int | None = None) -> list[SimDevice]:
        """Every device of an account (or of one product), in creation order."""
        with self._lock:
            return [
                d
                for d in self._devices.values()
                if d.owner == owner and (product_id is None or d.product_id == product_id)
            ]

    def find(self, id_or_name: str, owner: str | None = None) -> SimDevice | None:
        """A device by id (any case) or name, like the real API's `:deviceId` parameter."""
        with self._lock:
            return self._find(id_or_name, owner)

    def product(self, id_or_slug: str) -> Product | None:
        """A product by id or slug."""
        for product in self.products:
            if id_or_slug in (str(product.id), product.name):
                return product
        return None

    @property
    def flashes(self) -> list[FlashRecord]:
        """Every accepted OTA update, in order."""
        with self._lock:
            return list(self._flashes)

    def subscriber_count(self) -> int:
        """Open event streams."""
        return self._hub.count()

    def settled(self) -> bool:
        """No update or boot is still playing out."""
        return self._scheduler.idle()

    def account(self, token: str | None) -> str | None:
        """The account a token belongs to, or None for a wrong one."""
        if token is None:
            return None
        if secrets.compare_digest(token, self.token):
            return OWNER
        if self.other_token is not None and secrets.compare_digest(token, self.other_token):
            return OTHER_OWNER
        return None

    def variable(self, id_or_name: str, name: str, owner: str = OWNER) -> str:
        """A cloud variable's value; SimRefused 408 offline, 404 unknown (as the real API).

        A device the cloud believes online but that does not answer gets its 408 only
        after `timing.unanswered` seconds (the real cloud waits about 30 s).
        """
        with self._lock:
            device = self._require(id_or_name, owner)
            if not device.online:
                raise SimRefused(408, "Timed out.")
            if not device.reachable:
                raise SimRefused(408, "Timed out.", after=self.timing.unanswered)
            if name != STAMP_VARIABLE or device.firmware.report is None:
                raise SimRefused(404, "Variable not found")
            return device.firmware.report

    def call_function(self, id_or_name: str, name: str, owner: str = OWNER) -> int:
        """A cloud function's return value; 404 unless the firmware declares it."""
        with self._lock:
            device = self._require(id_or_name, owner)
            if name not in device.functions:
                raise SimRefused(404, f"Function {name} not found")
            if not device.online or not device.reachable:
                after = 0.0 if not device.online else self.timing.unanswered
                raise SimRefused(408, "Timed out.", after=after)
            return 1

    # -- acting ------------------------------------------------------------------------

    def flash(self, id_or_name: str, image: bytes, owner: str = OWNER) -> FlashRecord:
        """Start an OTA update; the events follow on the scheduler. SimRefused when refused."""
        with self._lock:
            style = draw_style(self.variation, self._style_rng)
            device = self._require(id_or_name, owner)
        firmware: Firmware | None = None
        try:
            firmware = _flashable(read_firmware(image), device.platform_id)
        except SimRefused:
            if style.refuse_bad_binary:
                raise  # else accepted; the device will not take it (an assumption)
        with self._lock:
            device = self._devices[device.id]  # as it is now, after reading the image
            if not device.online:
                raise SimRefused(400, "Device is offline", errors=["Device is offline"])
            if device.updating:
                raise SimRefused(
                    400, "An update is already in progress", errors=["Update in progress"]
                )
            succeeded = firmware is not None and self._fail_rng.random() >= self.fail_rate
            app_hash = firmware.app_hash if firmware else ""
            record = FlashRecord(device.id, app_hash, succeeded, self._clock())
            self._flashes.append(record)
            self._put(replace(device, updating=device.reachable))
            device_id, reachable = device.id, device.reachable
        log.info("OTA to %s: %s (%s)", device_id, app_hash[:12], "ok" if succeeded else "fails")
        if reachable:  # one that silently left the cloud never hears of it
            self._play_update(device_id, firmware if succeeded else None, style)
        return record

    def install(self, id_or_name: str, image: bytes) -> None:
        """Make a device run `image` from now on, without an update or any event (tests)."""
        firmware = read_firmware(image)
        with self._lock:
            device = self._require(id_or_name, None)
            self._put(replace(device, firmware=firmware, session_hash=firmware.app_hash))

    def rename(self, id_or_name: str, name: str, owner: str = OWNER) -> SimDevice:
        """`PUT /v1/devices/:id name=...` (`particle device rename`)."""
        with self._lock:
            return self._put(replace(self._require(id_or_name, owner), name=name))

    def signal(self, id_or_name: str, on: bool, owner: str = OWNER) -> SimDevice:
        """`PUT /v1/devices/:id signal=1|0` (`particle nyan`)."""
        with self._lock:
            device = self._require(id_or_name, owner)
            if not device.online:
                raise SimRefused(408, "Timed out.")
            return self._put(replace(device, signalling=on))

    def set_online(self, id_or_name: str, online: bool) -> None:
        """Connect or disconnect a device without a reboot (publishes `spark/status`)."""
        with self._lock:
            device = self._require(id_or_name, None)
            changed = device.online != online or not device.reachable
            device_id = self._put(replace(device, online=online, reachable=True)).id
        if changed:
            self.publish(device_id, "spark/status", "online" if online else "offline")

    def vanish(self, id_or_name: str) -> None:
        """The device stops answering while the cloud still believes it online."""
        with self._lock:
            self._put(replace(self._require(id_or_name, None), reachable=False))

    def publish(
        self,
        id_or_name: str,
        name: str,
        data: str,
        *,
        ttl: int = EVENT_TTL,
        block: bool = False,
        at: float | None = None,
    ) -> float:
        """Publish an event from a device to every matching stream; returns its time.

        A stream more than `stream_limit` events behind is cut off, as the real cloud does
        with a reader that cannot keep up; `block=True` waits for it instead (load tests).
        """
        now = self._clock() if at is None else at
        with self._lock:
            device = self._put(replace(self._require(id_or_name, None), last_heard=now))
            device_id, owner, product = device.id, device.owner, device.product_id
        frame = sse_frame(name, data, device_id, iso8601(now), ttl)
        self._hub.offer(frame, lambda s: s.wants(device_id, name, owner, product), block=block)
        return now

    def publish_as(self, owner: str, name: str, data: str, *, ttl: int = EVENT_TTL) -> None:
        """`POST /v1/devices/events`: an event from the account itself (coreid "api")."""
        frame = sse_frame(name, data, "api", iso8601(self._clock()), ttl)

        def wants(sub: Subscriber) -> bool:
            mine = sub.owner in (None, owner) and sub.device_id is None
            return mine and sub.product_id is None and name.startswith(sub.prefix)

        self._hub.offer(frame, wants, block=False)

    def publish_many(
        self, name: str, data: str, count: int, *, device: str | None = None, block: bool = True
    ) -> int:
        """`count` events, round-robin over every device (or from one); returns the count."""
        with self._lock:
            ids = [self._require(device, None).id] if device else list(self._devices)
        if not ids:
            return 0
        for n in range(count):
            self.publish(ids[n % len(ids)], name, data, block=block)
        return count

    # -- streams -----------------------------------------------------------------------

    def subscribe(
        self,
        device_id: str | None,
        prefix: str = "",
        *,
        owner: str | None = None,
        product_id: int | None = None,
    ) -> Subscriber:
        """A new stream of the events of one device (or all) whose name starts with prefix."""
        sub = Subscriber(device_id, prefix, self._stream_limit, owner=owner, product_id=product_id)
        return self._hub.add(sub)

    def unsubscribe(self, sub: Subscriber) -> None:
        self._hub.remove(sub)

    def drop_streams(self) -> int:
        """Cut every open event stream mid-way, as a network drop would; returns how many."""
        return self._hub.end_all(StreamEnd.DROP)

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

    # -- lifetime ----------------------------------------------------------------------

    def close(self) -> None:
        """Stop the devices and end every stream cleanly; idempotent."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
        self._scheduler.close()
        self._hub.end_all(StreamEnd.CLOSE)

    def __repr__(self) -> str:
        return f"CloudSim(devices={len(self._devices)}, fail_rate={self.fail_rate})"

    # -- helpers -----------------------------------------------------------------------

    def _find(self, id_or_name: str, owner: str | None) -> SimDevice | None:
        device = self._devices.get(id_or_name.lower())
        for candidate in () if device else self._devices.values():
            if candidate.name == id_or_name:
                device = candidate
                break
        if device is None or (owner is not None and device.owner != owner):
            return None
        return device

    def _put(self, device: SimDevice) -> SimDevice:
        """Store a device's new record (under the lock) and return it."""
        self._devices[device.id] = device
        return device

    def _require(self, id_or_name: str, owner: str | None) -> SimDevice:
        device = self._find(id_or_name, owner)
        if device is None:
            # The real cloud answers 403 for a device it does not know, or another
            # account's (and leaks the token in `info`; this one never does).
            raise SimRefused(403, "Permission Denied", info=UNKNOWN_DEVICE)
        return device


def _flashable(firmware: Firmware, platform_id: int) -> Firmware:
    """`firmware` if a device of this platform can run it; else SimRefused(400)."""
    if firmware.platform_id != platform_id:
        raise invalid_firmware(
            f"the firmware is for platform {firmware.platform_id}, the device is "
            f"platform {platform_id}"
        )
    return firmware


def device_summary(devices: list[SimDevice]) -> list[dict[str, str]]:
    """The `devices` list of the simulator's first stdout line."""
    return [{"id": d.id, "name": d.name} for d in devices]
