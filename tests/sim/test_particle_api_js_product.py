"""Particle's own JavaScript client (particle-api-js) runs a product release on the
simulator: uploadProductFirmware, releaseProductFirmware to a group,
lockDeviceProductFirmware, and listDevices of the group, then the updates roll out."""

from __future__ import annotations

import time
from pathlib import Path

from tests.sim.test_particle_api_js import run_js
from tests.support.fleet import FleetScene, fleet_cloud, product_build


def test_a_release_made_with_particle_api_js_rolls_out_to_its_group(tmp_path: Path) -> None:
    v1 = product_build(tmp_path, 11, 1)
    v2 = product_build(tmp_path, 12, 2)
    with fleet_cloud(12, v1.image) as scene:
        beta = scene.take(6)
        scene.groups(beta, "beta")
        locked = scene.take(1)[0]  # not in beta: gets v2 through its lock
        out = run_js(
            "release",
            scene.cloud,
            PRODUCT=str(scene.product.id),
            FIRMWARE=str(tmp_path / "app-12.bin"),
            LOCKED=locked,
        )
        _settled(scene)
        runs = {d.id: d.firmware.product_version for d in scene.sim.devices}
    assert out["upload"]["status"] == 200, out["upload"]
    assert out["upload"]["body"]["version"] == 2
    assert out["release"]["body"]["targeted_devices"] == 6
    assert out["lock"]["body"]["desired_firmware_version"] == 2
    listed = out["beta"]["body"]["devices"]
    assert {d["id"] for d in listed} == set(beta)
    assert {d["targeted_firmware_release_version"] for d in listed} == {2}
    assert {device: runs[device] for device in [*beta, locked]} == dict.fromkeys([*beta, locked], 2)
    assert sum(1 for version in runs.values() if version == 1) == 5
    assert v2.image == (tmp_path / "app-12.bin").read_bytes()


def _settled(scene: FleetScene) -> None:
    deadline = time.monotonic() + 60
    while not scene.sim.settled() or not scene.cloud.flashes():
        assert time.monotonic() < deadline, "the release never rolled out"
        time.sleep(0.02)
    scene.settle()
