"""A simulated Particle product's life: groups, product firmware, releases rolling out.

`ProductLife` is mixed into `stamp.sim.cloud.CloudSim` (like `stamp.sim.cloud_life`) and
works on its state under its lock. It follows Particle's product firmware model
(docs.particle.io, "Fleet management" and the Cloud API's "Product firmware"):

- a product has firmware versions, each a module binary whose suffix carries that
  product version (`POST /v1/products/:p/firmware`; another version number is refused);
- releasing a version (`PUT /v1/products/:p/firmware/release`, `product_default` or
  `groups`) sets `targeted_firmware_release_version` on the devices it targets, and a
  device locked with `desired_firmware_version` (`PUT /v1/products/:p/devices/:id`)
  follows its lock instead; development devices get nothing;
- the update reaches each targeted online device some time after the release (drawn
  over `rollout` seconds), through the simulator's own OTA, flaky with its fail rate: a
  failed one leaves the old firmware running and is tried again when the device next
  reconnects; an offline device gets it when it comes back;
- `churn` takes devices offline at random times and brings them back, except the ones
  that never reconnect; `never_connected` makes devices the cloud has never heard from.

Particle's `firmware_version` is what the device's running firmware says (its module
suffix), as the real cloud learns it from the device at each handshake.
"""

from __future__ import annotations

import random
import threading
from dataclasses import dataclass, field, replace
from functools import partial

from stamp.sim.cloud_firmware import Firmware, SimRefused, read_firmware
from stamp.sim.cloud_model import Product, SimDevice, SimTiming
from stamp.sim.scheduler import Scheduler


@dataclass
class ProductFirmware:
    """What one simulated product holds besides its devices."""

    images: dict[int, bytes] = field(default_factory=dict)
    """Module binaries by product firmware version."""
    rng: random.Random = field(default_factory=random.Random)
    """Draws of the rollout and the churn (seeded by the simulator's seed)."""


class ProductLife:
    """Product firmware, releases and reconnections (a mixin: CloudSim holds the state)."""

    timing: SimTiming
    products: list[Product]
    _lock: threading.Lock
    _devices: dict[str, SimDevice]
    _scheduler: Scheduler
    _product_stores: dict[int, ProductFirmware]

    def flash(self, id_or_name: str, image: bytes, owner: str = ...) -> object:
        raise NotImplementedError

    def set_online(self, id_or_name: str, online: bool) -> None:
        raise NotImplementedError

    def product(self, id_or_slug: str) -> Product | None:
        raise NotImplementedError

    def _require(self, id_or_name: str, owner: str | None) -> SimDevice:
        raise NotImplementedError

    def _put(self, device: SimDevice) -> SimDevice:
        raise NotImplementedError

    # -- setting a product up --------------------------------------------------------

    def product_firmware(self, product: Product) -> ProductFirmware:
        """The product's firmware store (made on first use, seeded by the product id)."""
        with self._lock:
            if not hasattr(self, "_product_stores"):  # a mixin: CloudSim has no slot for it
                self._product_stores = {}
            stores = self._product_stores
            if product.id not in stores:
                stores[product.id] = ProductFirmware(rng=random.Random(f"product:{product.id}"))
            return stores[product.id]

    def set_groups(self, id_or_name: str, groups: tuple[str, ...]) -> None:
        """Put a device in these product groups."""
        with self._lock:
            self._put(replace(self._require(id_or_name, None), groups=tuple(groups)))

    def set_development(self, id_or_name: str, development: bool = True) -> None:
        """Mark a device as a development device (releases pass it by)."""
        with self._lock:
            self._put(replace(self._require(id_or_name, None), development=development))

    def never_connected(self, id_or_name: str) -> None:
        """A device registered to the product that has never reached the cloud."""
        with self._lock:
            self._put(replace(self._require(id_or_name, None), online=False, last_heard=0.0))

    def add_product_firmware(self, product: Product, version: int, image: bytes) -> Firmware:
        """`POST /v1/products/:p/firmware`: a version's binary; SimRefused(400) if invalid."""
        firmware = read_firmware(image)
        if firmware.product_version != version:
            raise SimRefused(
                400,
                f"The binary's product version ({firmware.product_version}) is not {version}",
            )
        self.product_firmware(product).images[version] = image
        return firmware

    # -- releasing -------------------------------------------------------------------

    def release(
        self,
        product: Product,
        version: int,
        *,
        groups: tuple[str, ...] = (),
        product_default: bool = False,
        rollout: float = 0.0,
    ) -> list[str]:
        """`PUT /v1/products/:p/firmware/release`: target devices; returns their ids.

        Each targeted device is updated at a time drawn over `rollout` seconds.
        """
        store = self.product_firmware(product)
        if version not in store.images:
            raise SimRefused(404, f"Firmware version {version} not found")
        if not product_default and not groups:
            raise SimRefused(400, "Release to the product (product_default) or to groups")
        with self._lock:
            targeted = [
                d
                for d in self._devices.values()
                if d.product_id == product.id and (product_default or set(groups) & set(d.groups))
            ]
            for device in targeted:
                self._put(replace(device, targeted_firmware_release_version=version))
            if product_default:
                index = next(n for n, p in enumerate(self.products) if p.id == product.id)
                self.products[index] = replace(product, released_firmware=version)
            ids = [d.id for d in targeted]
            delays = [store.rng.uniform(0.0, rollout) for _ in ids]
        for device_id, delay in zip(ids, delays, strict=True):
            self._scheduler.after(delay, partial(self.update_if_due, device_id))
        return ids

    def lock_version(self, id_or_name: str, version: int | None) -> None:
        """`PUT /v1/products/:p/devices/:id desired_firmware_version=N` (None: unlock)."""
        with self._lock:
            device = self._require(id_or_name, None)
            device_id = self._put(replace(device, desired_firmware_version=version)).id
        self._scheduler.after(0.0, partial(self.update_if_due, device_id))

    def update_if_due(self, device_id: str) -> bool:
        """Send the device the version it should run, if it runs another and can take it."""
        with self._lock:
            device = self._devices[device_id]
            target = device.desired_firmware_version or device.targeted_firmware_release_version
            product_id = device.product_id
            due = (
                target is not None
                and not device.development
                and device.online
                and device.reachable
                and not device.updating
                and device.firmware.product_version != target
            )
        product = next((p for p in self.products if p.id == product_id), None)
        if not due or product is None or target is None:
            return False
        image = self.product_firmware(product).images.get(target)
        if image is None:
            return False
        try:
            self.flash(device_id, image)
        except SimRefused:  # went offline or started another update meanwhile
            return False
        return True

    # -- coming and going ------------------------------------------------------------

    def churn(
        self,
        product: Product,
        *,
        leave: float,
        never_back: float = 0.0,
        window: float = 1.0,
        away: tuple[float, float] = (0.1, 0.5),
    ) -> tuple[list[str], list[str]]:
        """Take a fraction `leave` of the product's devices offline at times drawn over
        `window` seconds, each back after a time drawn from `away`; a fraction
        `never_back` of all devices leaves for good. Returns (coming back, gone for good)."""
        rng = self.product_firmware(product).rng
        with self._lock:
            ids = [d.id for d in self._devices.values() if d.product_id == product.id and d.online]
        rng.shuffle(ids)
        gone = ids[: round(never_back * len(ids))]
        back = ids[len(gone) : len(gone) + round(leave * len(ids))]
        for device_id in gone + back:
            at = rng.uniform(0.0, window)
            self._scheduler.after(at, partial(self.set_online, device_id, False))
            if device_id in back:
                self._scheduler.after(at + rng.uniform(*away), partial(self.reconnect, device_id))
        return back, gone

    def reconnect(self, device_id: str) -> None:
        """The device is back online; a pending update follows once its handshake is done."""
        self.set_online(device_id, True)
        # A pending update goes out once the handshake is done: about a boot's time.
        self._scheduler.after(self.timing.boot, partial(self.update_if_due, device_id))
