"""Particle's own JavaScript client, particle-api-js, against the simulated cloud.

The client is the npm package pinned in tests/node/package-lock.json (`make test` installs
it); tests/node/particle_client.js calls its documented methods and prints what they
answered. Node and the package missing is a failure that names them, never a skip.
"""

from __future__ import annotations

import json
import logging
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from stamp.artifact.particle.module import parse_module
from stamp.sim.cloud import Variation
from tests.support import REPO_ROOT
from tests.support.cloud import (
    GIT_A,
    GIT_B,
    RunningCloud,
    cloud_sim,
    no_thread_leaks,
    report_json,
    stamp_image,
)

NODE_DIR = REPO_ROOT / "tests" / "node"
SCRIPT = NODE_DIR / "particle_client.js"
RUN_TIMEOUT = 120.0
FIELDS = [
    "id",
    "name",
    "last_app",
    "last_ip_address",
    "last_heard",
    "last_handshake_at",
    "product_id",
    "online",
    "connected",
    "platform_id",
    "cellular",
    "notes",
    "functions",
    "variables",
    "status",
    "serial_number",
    "system_firmware_version",
]
"""What Particle's API reference lists for each device of GET /v1/devices."""
OLD = stamp_image(109, GIT_A)
NEW = stamp_image(111, GIT_B, dirty=True)
NEW_HASH = parse_module(NEW).app_hash or ""


@pytest.fixture(autouse=True)
def _no_thread_leaks() -> Iterator[None]:
    with no_thread_leaks():
        yield


def node() -> str:
    found = shutil.which("node")
    if found is None:
        raise AssertionError("node is not installed: these tests need node and npm")
    if not (NODE_DIR / "node_modules" / "particle-api-js").is_dir():
        raise AssertionError(
            "particle-api-js is not installed: run `make node` (npm ci in tests/node)"
        )
    return found


def run_js(scenario: str, cloud: RunningCloud, **env: str) -> dict[str, Any]:
    """Run one scenario of particle_client.js; its JSON result."""
    done = subprocess.run(
        [node(), str(SCRIPT), scenario],
        env={
            "PATH": "/usr/bin:/bin",
            "PARTICLE_API_URL": cloud.api_url,
            "PARTICLE_ACCESS_TOKEN": cloud.token,
            "DEVICE": cloud.device_name,
            **env,
        },
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    result: dict[str, Any] = json.loads(done.stdout)
    return result


def test_the_particle_client_reads_devices_variables_and_gets_the_real_errors() -> None:
    with cloud_sim(devices=7, products=1, firmware=OLD) as cloud:
        assert cloud.sim is not None
        product = str(cloud.sim.products[0].id)
        out = run_js("basics", cloud, PRODUCT=product)
        renamed = cloud.sim.find(cloud.device_id)
    listed = out["listDevices"]
    assert listed["status"] == 200
    assert [d["id"] for d in listed["body"]] == [d["id"] for d in cloud.devices]
    for field in FIELDS:
        assert field in listed["body"][0], field
    assert out["getDevice"]["body"]["id"] == cloud.device_id  # found by name
    variable = out["getVariable"]
    assert variable["status"] == 200
    assert variable["body"]["name"] == "stamp"
    assert json.loads(variable["body"]["result"]) == json.loads(report_json(109, GIT_A))
    assert variable["body"]["coreInfo"]["deviceID"] == cloud.device_id
    assert out["unknownVariable"]["status"] == 404
    assert out["callFunction"]["status"] == 404
    assert out["callFunction"]["body"]["error"] == "Function led not found"
    # The 404 consumed the request's body: the next request on that socket is answered.
    assert out["afterError"]["status"] == 200
    assert out["socketsMade"] == 1
    assert out["signalOn"]["status"] == 200 and out["signalOn"]["body"]["signaling"] is True
    assert out["signalOff"]["body"]["signaling"] is False
    assert out["rename"]["status"] == 200 and out["rename"]["body"]["name"] == "renamed_photon"
    assert out["byNewName"]["body"]["id"] == cloud.device_id
    assert renamed is not None and renamed.name == "renamed_photon"
    assert out["noToken"]["status"] == 400
    assert out["noToken"]["body"]["error"] == "invalid_request"
    assert "The access token was not found" in out["noToken"]["error"]
    assert out["wrongToken"]["status"] == 401
    assert out["wrongToken"]["body"]["error"] == "invalid_token"


def test_the_particle_client_pages_through_a_product_fleet() -> None:
    with cloud_sim(devices=7, products=1, firmware=OLD) as cloud:
        assert cloud.sim is not None
        product = cloud.sim.products[0]
        out = run_js("basics", cloud, PRODUCT=product.name)
    pages = out["productPages"]
    assert [p["status"] for p in pages] == [200] * 4
    assert [p["body"]["meta"]["total_pages"] for p in pages] == [4] * 4
    seen = [d["id"] for p in pages for d in p["body"]["devices"]]
    assert seen == [d["id"] for d in cloud.devices]  # 2 + 2 + 2 + 1, in order, no repeats
    for page in pages:
        assert page["body"]["customers"] == []
        for device in page["body"]["devices"]:
            assert device["product_id"] == product.id
            assert device["firmware_version"] == 1
            assert device["desired_firmware_version"] is None
            assert device["targeted_firmware_release_version"] is None
            assert device["groups"] == [] and device["development"] is False
    assert out["productDevice"]["status"] == 200
    assert out["productDevice"]["body"]["id"] == seen[0]


@pytest.mark.parametrize("variation", [Variation.CLASSIC, Variation.FIELD])
def test_flash_device_with_a_file_path_plays_the_ota_story_on_its_event_stream(
    tmp_path: Path, variation: Variation, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="stamp.sim.cloud")
    firmware = tmp_path / "app.bin"
    firmware.write_bytes(NEW)
    with cloud_sim(firmware=OLD, variation=variation) as cloud:
        out = run_js("ota", cloud, FIRMWARE=str(firmware))
        assert cloud.sim is not None
        flashes = cloud.sim.flashes
    assert out["flash"] == {
        "status": 200,
        "body": {"ok": True, "id": cloud.device_id, "status": "Update started"},
    }
    # particle-api-js streams a file path without a Content-Length; it arrived whole.
    assert f"PUT /v1/devices/{cloud.device_name} (chunked)" in caplog.text
    assert [f.app_hash for f in flashes] == [NEW_HASH]
    assert out["timedOut"] is False
    events = {(e["name"], e["data"]) for e in out["events"]}
    shown = NEW_HASH.upper() if variation is Variation.CLASSIC else NEW_HASH
    assert {
        ("spark/flash/status", "started "),
        ("spark/flash/status", "success "),
        ("spark/status", "offline"),
        ("spark/status", "online"),
        ("spark/device/last_reset", "update"),
        ("spark/device/app-hash", shown),
        ("stamp", report_json(111, GIT_B, dirty=True)),
    } <= events
    assert {e["coreid"] for e in out["events"]} == {cloud.device_id}
    assert out["events"][-1]["name"] == "stamp"


def test_publish_event_reaches_an_open_stream_and_a_firehose_needs_a_prefix() -> None:
    with cloud_sim() as cloud:
        out = run_js("publish", cloud)
    assert out["published"] == {"status": 200, "body": {"ok": True}}
    assert out["timedOut"] is False
    assert [(e["name"], e["data"]) for e in out["events"]] == [("test/hello", "from js")]
    assert out["unfiltered"]["status"] == 400
    assert out["unfiltered"]["body"]["error"] == "event prefix filter is required"
