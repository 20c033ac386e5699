"""A simulated Particle product for the `stamp fleet` tests and benchmark.

`product_build` makes a real Particle user-part module carrying a stamp record and a
product firmware version in its suffix, with the manifest `stamp manifest` would write
for it (including the `particle` module info). `FleetScene` is a simulated cloud with
one product whose devices are put, one by one, into exactly the state a test counts:
running a build, silent, offline, never seen.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from stamp.artifact.manifest import Artifact, Manifest, write_manifest
from stamp.artifact.particle.build import build_user_part
from stamp.artifact.particle.module import parse_module
from stamp.identity import Identity
from stamp.record import StampRecord
from stamp.sim.cloud_model import FIRST_PRODUCT_ID
from tests.support.cloud import FAST, GIT_A, RunningCloud, cloud_sim

PRODUCT_ID = FIRST_PRODUCT_ID
"""The id of the simulator's first product."""


@dataclass(frozen=True)
class ProductBuild:
    """One product firmware version: the image and its manifest."""

    image: bytes
    """The module binary."""
    manifest: Manifest
    """What `stamp manifest` records for it."""
    manifest_path: Path
    """Where that manifest was written."""


def product_build(
    directory: Path, edit: int, version: int, *, git: str = GIT_A, dirty: bool = False
) -> ProductBuild:
    """A module image of product firmware `version` carrying (edit, git), and its manifest."""
    directory.mkdir(parents=True, exist_ok=True)
    record = StampRecord(edit=edit, git=git, dirty=dirty).pack()
    image = build_user_part(b"\x00" * 32 + record, product_id=PRODUCT_ID, product_version=version)
    module = parse_module(image)
    assert module.app_hash is not None
    digest = hashlib.sha256(image).hexdigest()
    path = directory / f"app-{edit}.bin"
    path.write_bytes(image)
    recorded = (datetime.now(UTC) - timedelta(days=edit % 7)).replace(microsecond=0)
    manifest = Manifest(
        identity=Identity(
            edit=edit, git=git, dirty=dirty, app_hash=module.app_hash.lower(), image_sha256=digest
        ),
        recorded_at=recorded.isoformat().replace("+00:00", "Z"),
        bin=Artifact(path=path.name, sha256=digest, size=len(image)),
        particle=module.to_json(),
    )
    manifest_path = directory / f"app-{edit}.stamp.json"
    write_manifest(manifest, manifest_path)
    return ProductBuild(image=image, manifest=manifest, manifest_path=manifest_path)


def unstamped_image(version: int) -> bytes:
    """A valid product module without a stamp record (an app that never reports)."""
    return build_user_part(b"\x00" * 64, product_id=PRODUCT_ID, product_version=version)


class FleetScene:
    """A simulated product whose devices a test puts into known states."""

    def __init__(self, cloud: RunningCloud) -> None:
        assert cloud.sim is not None
        self.cloud = cloud
        self.sim = cloud.sim
        self.product = self.sim.products[0]
        self.ids = [d.id for d in self.sim.devices_of("sim_user", self.product.id)]
        self._next = 0

    def take(self, count: int) -> list[str]:
        """The next `count` devices not yet given a state."""
        taken = self.ids[self._next : self._next + count]
        assert len(taken) == count, "not enough devices in the scene"
        self._next += count
        return taken

    def install(self, ids: list[str], image: bytes) -> None:
        for device_id in ids:
            self.sim.install(device_id, image)

    def offline(self, ids: list[str]) -> None:
        for device_id in ids:
            self.sim.set_online(device_id, False)

    def silent(self, ids: list[str]) -> None:
        """Online as far as the cloud knows, answering nothing."""
        for device_id in ids:
            self.sim.vanish(device_id)

    def never_seen(self, ids: list[str]) -> None:
        for device_id in ids:
            self.sim.never_connected(device_id)

    def settle(self, limit: float = 60.0) -> None:
        """Wait until no update or boot is playing out (a bound for a stuck simulator)."""
        deadline = time.monotonic() + limit
        while not self.sim.settled():
            assert time.monotonic() < deadline, "the simulator never settled"
            time.sleep(0.01)

    def groups(self, ids: list[str], *groups: str) -> None:
        for device_id in ids:
            self.sim.set_groups(device_id, groups)


@contextmanager
def fleet_cloud(
    devices: int, firmware: bytes, *, fail_rate: float = 0.0, seed: int | None = 1
) -> Iterator[FleetScene]:
    """A simulated cloud with one product of `devices` devices, all running `firmware`."""
    with cloud_sim(
        devices=devices, products=1, firmware=firmware, timing=FAST, fail_rate=fail_rate, seed=seed
    ) as cloud:
        yield FleetScene(cloud)
