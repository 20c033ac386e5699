"""The simulated product over real HTTP: product firmware, releases, locks, groups, churn."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.cloud import no_thread_leaks
from tests.support.fleet import FleetScene, ProductBuild, fleet_cloud, product_build


@pytest.fixture(autouse=True)
def _no_thread_leaks() -> Iterator[None]:
    with no_thread_leaks():
        yield


@pytest.fixture
def builds(tmp_path: Path) -> dict[int, ProductBuild]:
    return {1: product_build(tmp_path, 11, 1), 2: product_build(tmp_path, 12, 2)}


def http(scene: FleetScene) -> httpx.Client:
    return httpx.Client(
        base_url=scene.cloud.api_url,
        headers={"Authorization": f"Bearer {scene.cloud.token}"},
        timeout=30,
    )


def listed(client: httpx.Client, product: int, **params: Any) -> list[dict[str, Any]]:
    """Every device of the product's list, following its pages."""
    devices: list[dict[str, Any]] = []
    page, pages = 1, 1
    while page <= pages:
        body = client.get(
            f"/v1/products/{product}/devices", params={"page": page, "per_page": 7, **params}
        ).json()
        devices += body["devices"]
        pages = body["meta"]["total_pages"]
        page += 1
    return devices


def upload(client: httpx.Client, product: int, version: int, image: bytes) -> httpx.Response:
    return client.post(
        f"/v1/products/{product}/firmware",
        data={"version": str(version), "title": f"v{version}"},
        files={"binary": ("app.bin", image, "application/octet-stream")},
    )


def test_a_release_to_a_group_rolls_out_through_the_flaky_ota(
    builds: dict[int, ProductBuild],
) -> None:
    with fleet_cloud(60, builds[1].image, fail_rate=0.4, seed=5) as scene, http(scene) as client:
        pid = scene.product.id
        beta = scene.take(20)
        scene.groups(beta, "beta")
        scene.groups(scene.take(40), "production")
        refused = upload(client, pid, 3, builds[2].image)  # the binary says version 2
        assert refused.status_code == 400
        assert upload(client, pid, 2, builds[2].image).status_code == 200
        released = client.put(
            f"/v1/products/{pid}/firmware/release",
            json={"version": 2, "groups": ["beta"], "rollout": 0.5},
        )
        assert released.json()["targeted_devices"] == 20
        scene.settle()
        flashes = scene.cloud.flashes()
        devices = {d["id"]: d for d in listed(client, pid)}
        in_beta = listed(client, pid, groups="beta")
    assert {f["device_id"] for f in flashes} == set(beta)  # once each, beta only
    failed = {f["device_id"] for f in flashes if not f["succeeded"]}
    assert 0 < len(failed) < 20  # the seed's draw: some failed, silently
    for device_id in beta:
        assert devices[device_id]["targeted_firmware_release_version"] == 2
        # Particle's firmware_version is what the device runs, failed updates included.
        assert devices[device_id]["firmware_version"] == (1 if device_id in failed else 2)
    assert {d["id"] for d in in_beta} == set(beta)
    others = [d for d in devices.values() if d["id"] not in beta]
    assert {d["targeted_firmware_release_version"] for d in others} == {None}


def test_a_lock_and_a_development_device(builds: dict[int, ProductBuild]) -> None:
    with fleet_cloud(10, builds[1].image) as scene, http(scene) as client:
        pid = scene.product.id
        assert upload(client, pid, 2, builds[2].image).status_code == 200
        locked, dev = scene.take(2)
        answer = client.put(
            f"/v1/products/{pid}/devices/{locked}", json={"desired_firmware_version": 2}
        )
        assert answer.json()["desired_firmware_version"] == 2
        client.put(f"/v1/products/{pid}/devices/{dev}", json={"development": True})
        scene.settle()
        client.put(
            f"/v1/products/{pid}/firmware/release",
            json={"version": 2, "product_default": True},
        )
        scene.settle()
        devices = {d["id"]: d for d in listed(client, pid)}
    assert devices[locked]["firmware_version"] == 2
    assert devices[dev]["development"] is True
    assert devices[dev]["firmware_version"] == 1  # development devices get no release
    assert sum(1 for d in devices.values() if d["firmware_version"] == 2) == 9


def test_devices_come_and_go_and_get_the_update_when_back(
    builds: dict[int, ProductBuild],
) -> None:
    with fleet_cloud(50, builds[1].image, seed=2) as scene, http(scene) as client:
        pid = scene.product.id
        never = scene.take(3)
        scene.never_seen(never)
        away = scene.take(5)
        scene.offline(away)  # offline when the release comes
        scene.sim.add_product_firmware(scene.product, 2, builds[2].image)
        scene.sim.release(scene.product, 2, product_default=True)
        scene.settle()
        still = {d.firmware.product_version for d in scene.sim.devices if d.id in away}
        assert still == {1}  # offline: the release waits for them
        for device_id in away:
            scene.sim.reconnect(device_id)
        back, gone = scene.sim.churn(
            scene.product, leave=0.2, never_back=0.1, window=0.2, away=(0.05, 0.2)
        )
        scene.settle()
        devices = {d["id"]: d for d in listed(client, pid)}
    assert len(back) == 9 and len(gone) == 5  # of the 47 online ones
    assert {devices[i]["online"] for i in gone} == {False}
    assert {devices[i]["online"] for i in back} == {True}
    assert {devices[i]["last_heard"] for i in never} == {None}
    assert {devices[i]["firmware_version"] for i in away} == {2}
