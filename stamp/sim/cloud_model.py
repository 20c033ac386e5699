"""What the simulated Particle Cloud knows: its pace, its devices, products and accounts.

`SimTiming` is how long the steps of an OTA update take (the real cloud's pace divided by
a speed factor); `SimDevice` is one device's state, a frozen record the simulator replaces
as the device changes; `Product` is a Particle product (a fleet of devices).
`stamp.sim.cloud.CloudSim` holds them under its lock; this module has no behaviour beyond
making and scaling them.

The product model is deliberately small but complete enough to grow on: each device
carries the product fields Particle's product device list returns (firmware_version,
desired_firmware_version, targeted_firmware_release_version, groups, development), and a
`Product` has a `released_firmware` slot, so product firmware releases and groups can be
added on top without changing how devices or streams work.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from stamp.sim.cloud_firmware import Firmware

PHOTON_PLATFORM_ID = 6
OWNER = "sim_user"
"""The account of the simulator's main token."""
OTHER_OWNER = "other_user"
"""A second account (its devices answer 403 to the main token, and the other way round)."""
FIRST_PRODUCT_ID = 10_001


@dataclass(frozen=True)
class SimTiming:
    """How long each step of an OTA update takes, in seconds.

    The defaults are well under a second (tests and the demo); `real_pace(speed)` is the
    pace the real cloud shows in Particle's "firmware update events" logs (seconds between
    steps), divided by `speed`.
    """

    transfer: float = 0.1
    """From `spark/flash/status` "started " to "success " (the upload to the device)."""
    restart: float = 0.05
    """From "success " until the device drops offline to apply the update."""
    boot: float = 0.2
    """Offline until it is back online (the reboot)."""
    step: float = 0.02
    """Between the events a device publishes as it boots."""
    unanswered: float = 1.0
    """How long a variable read or function call waits for a device the cloud believes
    online but that does not answer, before the 408 (the real cloud: about 30 s)."""

    def scaled(self, factor: float) -> SimTiming:
        """Every delay multiplied by `factor` (tests use tiny ones)."""
        return SimTiming(
            transfer=self.transfer * factor,
            restart=self.restart * factor,
            boot=self.boot * factor,
            step=self.step * factor,
            unanswered=self.unanswered * factor,
        )

    @staticmethod
    def real_pace(speed: float = 1.0) -> SimTiming:
        """The real cloud's pace divided by `speed` (30: about half a second per update)."""
        # From the published logs: started -> success ~3 s, reboot ~5 s, boot events ~1 s
        # apart, an unanswered variable read ~30 s.
        return SimTiming(transfer=3.0, restart=1.0, boot=5.0, step=0.5, unanswered=30.0).scaled(
            1.0 / speed
        )


@dataclass(frozen=True)
class Product:
    """A Particle product: a fleet of devices under one product id."""

    id: int
    """The product id (e.g. 10001)."""
    name: str
    """e.g. "sim-product-1"; also its slug."""
    released_firmware: int | None = None
    """The product firmware version released to the fleet (None: none yet). A later
    feature's seam: PUT /v1/products/:p/firmware/release sets it and rolls it out."""


@dataclass(frozen=True)
class SimDevice:
    """A simulated device as it is at one moment.

    Frozen: `CloudSim` replaces a device's record under its lock (`dataclasses.replace`),
    so a record it hands out stays as it was when read.
    """

    id: str
    """24 lowercase hex digits."""
    name: str
    """e.g. "sim_photon_1"."""
    firmware: Firmware
    """What it runs."""
    session_hash: str
    """App hash of the previous session: Device OS publishes app-hash only on a change."""
    online: bool = True
    """What the cloud believes (its `online`/`connected` fields)."""
    reachable: bool = True
    """False: the cloud still believes it online but it answers nothing (a silent drop)."""
    updating: bool = False
    """An OTA update is under way."""
    last_heard: float = 0.0
    """Wall-clock time of its last event or connection."""
    platform_id: int = PHOTON_PLATFORM_ID
    """Particle platform id (6: Photon)."""
    owner: str = OWNER
    """The account it is claimed by."""
    product_id: int | None = None
    """The product it belongs to (None: a developer device)."""
    groups: tuple[str, ...] = ()
    """Its product groups."""
    development: bool = False
    """A product's development device: releases pass it by."""
    desired_firmware_version: int | None = None
    """The product firmware version it is locked to (None: it follows the releases)."""
    targeted_firmware_release_version: int | None = None
    """The released version the cloud targets it with."""
    signalling: bool = False
    """`PUT signal=1` (`particle nyan`): shouting rainbows."""
    functions: tuple[str, ...] = ()
    """Cloud functions its firmware declares."""


@dataclass(frozen=True)
class FlashRecord:
    """One OTA update the simulator accepted, and how it will end."""

    device_id: str
    """The device flashed."""
    app_hash: str
    """The app hash of the uploaded image ("" for one the cloud could not read)."""
    succeeded: bool
    """False: the device will boot its old firmware (the fail-rate draw, or a bad image)."""
    at: float
    """Wall-clock time the upload was accepted."""


DEVICE_ID_BYTES = 12
"""Particle device ids are 24 hex digits."""


def make_devices(
    devices: int,
    products: list[Product],
    initial: Firmware | None,
    *,
    id_rng: random.Random,
    app_rng: random.Random,
    now: float,
    other_account: bool,
    functions: tuple[str, ...],
) -> dict[str, SimDevice]:
    """The simulator's devices by id: the main account's (dealt round-robin over the
    products, if any), then one of another account's when `other_account`."""
    made: dict[str, SimDevice] = {}
    owners = [(OWNER, "sim_photon", devices)]
    if other_account:
        owners.append((OTHER_OWNER, "other_photon", 1))
    for owner, stem, count in owners:
        for number in range(1, count + 1):
            device_id = id_rng.getrandbits(8 * DEVICE_ID_BYTES).to_bytes(DEVICE_ID_BYTES).hex()
            # Without --firmware a device runs some app stamp cannot identify.
            runs = initial or Firmware(app_rng.getrandbits(256).to_bytes(32).hex(), report=None)
            in_product = products and owner == OWNER
            made[device_id] = SimDevice(
                id=device_id,
                name=f"{stem}_{number}",
                firmware=runs,
                session_hash=runs.app_hash,
                last_heard=now,
                platform_id=runs.platform_id or PHOTON_PLATFORM_ID,
                owner=owner,
                product_id=products[(number - 1) % len(products)].id if in_product else None,
                functions=functions,
            )
    return made
