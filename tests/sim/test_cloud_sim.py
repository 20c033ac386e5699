"""The simulated Particle Cloud over real HTTP and SSE on loopback (SPEC section 8)."""

from __future__ import annotations

import hashlib
import json
import logging
import re
import time
from collections.abc import Iterator

import httpx
import pytest

from stamp.artifact.build_id import scan_build_id
from stamp.artifact.particle.build import build_user_part
from stamp.artifact.particle.module import parse_module
from stamp.redact import MASK
from stamp.sim.cloud import CloudSim
from stamp.sim.cloud_firmware import read_firmware
from tests.support.cloud import (
    GIT_A,
    GIT_B,
    EventRecorder,
    RunningCloud,
    cloud_sim,
    no_thread_leaks,
    report_json,
    stamp_image,
)

OLD = stamp_image(109, GIT_A)
NEW = stamp_image(111, GIT_B, dirty=True)
NEW_HASH = parse_module(NEW).app_hash or ""
INVALID_TOKEN = {
    "error": "invalid_token",
    "error_description": "The access token provided is invalid.",
}
NO_TOKEN = {
    "error": "invalid_request",
    "error_description": "The access token was not found",
}


@pytest.fixture(autouse=True)
def _no_thread_leaks() -> Iterator[None]:
    with no_thread_leaks():
        yield


def auth(cloud: RunningCloud) -> dict[str, str]:
    return {"Authorization": f"Bearer {cloud.token}"}


def put_firmware(cloud: RunningCloud, device: str, image: bytes) -> httpx.Response:
    return httpx.put(
        f"{cloud.api_url}/v1/devices/{device}",
        headers=auth(cloud),
        files={"file": ("firmware.bin", image, "application/octet-stream")},
    )


def boot_events(recorder: EventRecorder) -> list[tuple[str, str]]:
    """Every (name, data) until the device's last boot event (its `stamp` event)."""
    events = recorder.wait_for_event("stamp")
    return [(e.name, e.data) for e in events]


# --- devices, auth ---------------------------------------------------------------------


def test_lists_devices_with_real_ids_and_names() -> None:
    with cloud_sim(devices=3, seed=5) as cloud:
        response = httpx.get(f"{cloud.api_url}/v1/devices", headers=auth(cloud))
    assert response.status_code == 200
    devices = response.json()
    assert [d["name"] for d in devices] == ["sim_photon_1", "sim_photon_2", "sim_photon_3"]
    for device in devices:
        assert re.fullmatch(r"[0-9a-f]{24}", device["id"])
        assert device["online"] is True and device["connected"] is True
        assert device["platform_id"] == 6
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", device["last_heard"])
    assert [d["id"] for d in devices] == [d["id"] for d in cloud.devices]


@pytest.mark.parametrize("header", [None, "Basic abc", "Bearer"])
def test_without_a_token_every_path_is_400_invalid_request(header: str | None) -> None:
    """api.particle.io answers a request that carries no token 400 invalid_request."""
    with cloud_sim() as cloud:
        headers = {"Authorization": header} if header else {}
        for path in ("/v1/devices", f"/v1/devices/{cloud.device_id}", "/v1/devices/events"):
            response = httpx.get(cloud.api_url + path, headers=headers)
            assert response.status_code == 400, path
            assert response.json() == NO_TOKEN
            assert response.headers["content-type"].startswith("application/json")


def test_a_wrong_token_on_every_path_is_401() -> None:
    with cloud_sim() as cloud:
        headers = {"Authorization": "Bearer not-the-token"}
        for path in ("/v1/devices", f"/v1/devices/{cloud.device_id}", "/v1/devices/events"):
            response = httpx.get(cloud.api_url + path, headers=headers)
            assert response.status_code == 401, path
            assert response.json() == INVALID_TOKEN
            assert response.headers["content-type"].startswith("application/json")
            assert "invalid_token" in response.headers["www-authenticate"]


def test_the_access_token_query_parameter_is_accepted_but_never_logged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG, logger="stamp.sim.cloud")
    with cloud_sim() as cloud:
        response = httpx.get(f"{cloud.api_url}/v1/devices", params={"access_token": cloud.token})
    assert response.status_code == 200
    assert f"GET /v1/devices?access_token={MASK}" in caplog.text
    assert cloud.token not in caplog.text


def test_a_device_is_found_by_id_in_any_case_or_by_name() -> None:
    with cloud_sim(devices=2) as cloud:
        for key in (cloud.device_id, cloud.device_id.upper(), cloud.device_name):
            response = httpx.get(f"{cloud.api_url}/v1/devices/{key}", headers=auth(cloud))
            assert response.status_code == 200
            assert response.json()["id"] == cloud.device_id


def test_an_unknown_device_is_403_permission_denied_like_the_real_api() -> None:
    with cloud_sim() as cloud:
        response = httpx.get(f"{cloud.api_url}/v1/devices/nosuchdevice", headers=auth(cloud))
    assert response.status_code == 403
    body = response.json()
    assert body["error"] == "Permission Denied"
    assert "didn't recognize that device" in body["info"]
    assert cloud.token not in response.text


# --- the stamp variable ------------------------------------------------------------------


def test_the_stamp_variable_holds_the_report_of_the_running_image() -> None:
    with cloud_sim(firmware=OLD) as cloud:
        response = httpx.get(
            f"{cloud.api_url}/v1/devices/{cloud.device_id}/stamp", headers=auth(cloud)
        )
    assert response.status_code == 200
    body = response.json()
    assert body["name"] == "stamp"
    assert json.loads(body["result"]) == {"edit": 109, "git": GIT_A, "dirty": False}
    assert body["coreInfo"]["deviceID"] == cloud.device_id
    assert body["coreInfo"]["connected"] is True


def test_variable_errors_have_the_real_api_shapes() -> None:
    with cloud_sim(firmware=OLD) as cloud:
        url = f"{cloud.api_url}/v1/devices/{cloud.device_id}"
        unknown = httpx.get(f"{url}/temperature", headers=auth(cloud))
        assert cloud.sim is not None
        cloud.sim.set_online(cloud.device_id, False)
        offline = httpx.get(f"{url}/stamp", headers=auth(cloud))
    assert (unknown.status_code, unknown.json()) == (
        404,
        {"ok": False, "error": "Variable not found"},
    )
    assert (offline.status_code, offline.json()) == (408, {"ok": False, "error": "Timed out."})


def test_an_app_without_stamp_has_no_stamp_variable() -> None:
    with cloud_sim(firmware=None) as cloud:
        response = httpx.get(
            f"{cloud.api_url}/v1/devices/{cloud.device_id}/stamp", headers=auth(cloud)
        )
    assert response.status_code == 404


# --- OTA ---------------------------------------------------------------------------------


def test_ota_success_publishes_the_whole_sequence_in_order() -> None:
    with cloud_sim(firmware=OLD) as cloud, EventRecorder(cloud) as recorder:
        response = put_firmware(cloud, cloud.device_id, NEW)
        events = boot_events(recorder)
        variable = httpx.get(
            f"{cloud.api_url}/v1/devices/{cloud.device_id}/stamp", headers=auth(cloud)
        )
    assert response.status_code == 200
    assert response.json() == {"ok": True, "id": cloud.device_id, "status": "Update started"}
    assert events == [
        ("spark/flash/status", "started "),
        ("spark/flash/status", "success "),
        ("spark/status", "offline"),
        ("spark/status", "online"),
        ("spark/device/last_reset", "update"),
        ("spark/device/app-hash", NEW_HASH.upper()),
        ("stamp", report_json(111, GIT_B, dirty=True)),
    ]
    assert {e.envelope["coreid"] for e in recorder.events} == {cloud.device_id}
    assert json.loads(variable.json()["result"])["edit"] == 111


def test_the_same_image_again_publishes_no_app_hash() -> None:
    """Device OS publishes spark/device/app-hash only when the hash changed."""
    with cloud_sim(firmware=OLD) as cloud, EventRecorder(cloud) as recorder:
        put_firmware(cloud, cloud.device_name, OLD)
        events = boot_events(recorder)
    assert [name for name, _ in events] == [
        "spark/flash/status",
        "spark/flash/status",
        "spark/status",
        "spark/status",
        "spark/device/last_reset",
        "stamp",
    ]
    assert events[-1] == ("stamp", report_json(109, GIT_A))


def test_a_failed_ota_says_success_and_boots_the_old_firmware() -> None:
    with cloud_sim(firmware=OLD, fail_rate=1.0) as cloud, EventRecorder(cloud) as recorder:
        response = put_firmware(cloud, cloud.device_id, NEW)
        events = boot_events(recorder)
        assert cloud.sim is not None
        while not cloud.sim.settled():
            time.sleep(0.01)
        variable = httpx.get(
            f"{cloud.api_url}/v1/devices/{cloud.device_id}/stamp", headers=auth(cloud)
        )
        flashes = cloud.flashes()
    assert response.json()["status"] == "Update started"
    assert events == [
        ("spark/flash/status", "started "),
        ("spark/flash/status", "success "),  # the real cloud says so too
        ("spark/status", "offline"),
        ("spark/status", "online"),
        ("spark/device/last_reset", "update"),
        ("stamp", report_json(109, GIT_A)),  # the old identity, and no app-hash before it
    ]
    assert all(e.name != "spark/device/app-hash" for e in recorder.events)
    assert json.loads(variable.json()["result"])["edit"] == 109
    assert [(f["app_hash"], f["succeeded"]) for f in flashes] == [(NEW_HASH, False)]


def test_fail_rate_draws_are_reproducible_with_a_seed() -> None:
    def outcomes(seed: int) -> tuple[list[str], list[bool]]:
        with CloudSim(devices=16, seed=seed, fail_rate=0.5) as sim:
            for device in sim.devices:
                sim.flash(device.id, NEW)
            return [d.id for d in sim.devices], [f.succeeded for f in sim.flashes]

    first, again, other = outcomes(11), outcomes(11), outcomes(12)
    assert first == again
    assert first[0] != other[0] and first[1] != other[1]
    assert 0 < sum(first[1]) < 16  # some fail, some succeed


def test_the_failure_sequence_does_not_depend_on_the_device_count() -> None:
    def first_outcomes(devices: int) -> list[bool]:
        with CloudSim(devices=devices, seed=3, fail_rate=0.5) as sim:
            for device in sim.devices[:4]:
                sim.flash(device.id, NEW)
            return [f.succeeded for f in sim.flashes]

    assert first_outcomes(4) == first_outcomes(40)


def test_device_ids_for_a_seed_do_not_depend_on_the_firmware() -> None:
    with CloudSim(devices=3, seed=9) as plain, CloudSim(devices=3, seed=9, firmware=OLD) as old:
        assert [d.id for d in plain.devices] == [d.id for d in old.devices]


@pytest.mark.parametrize(
    ("image", "reason"),
    [
        (b"MZ not a module at all" * 10, "Invalid firmware file"),
        (NEW[:-1] + bytes([NEW[-1] ^ 1]), "CRC"),
        (build_user_part(b"x" * 64, platform_id=32), "platform 32"),
    ],
)
def test_an_upload_that_is_not_a_flashable_module_is_400(image: bytes, reason: str) -> None:
    with cloud_sim(firmware=OLD) as cloud:
        response = put_firmware(cloud, cloud.device_id, image)
        assert cloud.sim is not None
        flashes = cloud.sim.flashes
    assert response.status_code == 400
    body = response.json()
    assert body["ok"] is False and reason in body["error"]
    assert body["errors"]
    assert flashes == []


def test_an_offline_device_cannot_be_flashed() -> None:
    with cloud_sim(firmware=OLD) as cloud:
        assert cloud.sim is not None
        cloud.sim.set_online(cloud.device_id, False)
        response = put_firmware(cloud, cloud.device_id, NEW)
    assert response.status_code == 400
    assert response.json()["error"] == "Device is offline"


def test_a_put_without_a_file_field_is_400() -> None:
    with cloud_sim() as cloud:
        response = httpx.put(
            f"{cloud.api_url}/v1/devices/{cloud.device_id}",
            headers=auth(cloud),
            files={"binary": ("a.bin", OLD)},
        )
    assert response.status_code == 400


@pytest.mark.parametrize("chunked", [False, True])
def test_an_upload_keeps_binary_bytes_exactly(chunked: bool) -> None:
    """Every byte of the file field arrives (the module's SHA-256 and CRC would say
    otherwise), with or without Content-Length, beside other form fields."""
    payload = bytes(range(256)) * 8 + b"\r\n--\r\n\r\n"
    image = stamp_image(5, filler=payload)
    request = httpx.Request(
        "PUT",
        "http://x/",
        files={"file": ("a.bin", image)},
        data={"file_type": "binary", "build_target_version": "1.5.2"},
    )
    body = request.read()

    def pieces() -> Iterator[bytes]:
        for at in range(0, len(body), 1000):
            yield body[at : at + 1000]

    with cloud_sim(firmware=OLD) as cloud:
        headers = {**auth(cloud), "Content-Type": request.headers["content-type"]}
        url = f"{cloud.api_url}/v1/devices/{cloud.device_id}"
        with httpx.Client() as http:
            sent = http.put(url, headers=headers, content=pieces() if chunked else body)
            not_multipart = http.put(url, headers=auth(cloud), json={"file": "a.bin"})
        assert cloud.sim is not None
        flashes = cloud.sim.flashes
    assert sent.status_code == 200, sent.text
    assert [f.app_hash for f in flashes] == [parse_module(image).app_hash]
    assert not_multipart.status_code == 400


def test_the_report_includes_a_build_id_note_found_in_the_image() -> None:
    note = b"\x04\x00\x00\x00\x14\x00\x00\x00\x03\x00\x00\x00GNU\x00" + bytes(range(20))
    image = stamp_image(7, filler=note)
    assert scan_build_id(image) == bytes(range(20)).hex()
    report = read_firmware(image).report
    assert report is not None and json.loads(report)["build_id"] == bytes(range(20)).hex()
    assert (
        read_firmware(stamp_image(7)).app_hash == hashlib.sha256(stamp_image(7)[:-38]).hexdigest()
    )


# --- the event stream --------------------------------------------------------------------


def test_sse_framing_is_byte_exact_with_keepalives() -> None:
    with cloud_sim(keepalive=0.05) as cloud:
        assert cloud.sim is not None
        url = f"{cloud.api_url}/v1/devices/{cloud.device_id}/events"
        received = b""
        with (
            httpx.Client() as http,
            http.stream("GET", url, headers=auth(cloud)) as response,
        ):
            assert response.status_code == 200
            assert response.headers["content-type"] == "text/event-stream"
            assert response.headers["cache-control"] == "no-cache"
            assert response.headers["transfer-encoding"] == "chunked"
            for chunk in response.iter_bytes():
                received += chunk
                if received == b":ok\n\n":
                    cloud.sim.publish(cloud.device_id, "test/hello", 'line "one"\nline two')
                if received.count(b":\n\n") >= 2 and b"event:" in received:
                    break
    assert received.startswith(b":ok\n\n")
    frame = re.search(rb"event: [^\n]*\ndata: [^\n]*\n\n", received)
    assert frame is not None
    match = re.fullmatch(
        rb'event: test/hello\ndata: \{"data":"line \\"one\\"\\nline two","ttl":60,'
        rb'"published_at":"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z","coreid":"([0-9a-f]{24})"\}\n\n',
        frame.group(0),
    )
    assert match is not None and match.group(1).decode() == cloud.device_id
    rest = received.replace(b":ok\n\n", b"", 1).replace(frame.group(0), b"")
    assert set(rest.split(b":\n\n")) == {b""}  # nothing else but keep-alive comments


def test_streams_filter_by_device_and_by_name_prefix() -> None:
    with cloud_sim(devices=2) as cloud:
        first, second = (d["id"] for d in cloud.devices)
        with (
            EventRecorder(cloud, "/v1/devices/events") as everything,
            EventRecorder(cloud, f"/v1/devices/{second}/events") as one_device,
            EventRecorder(cloud, "/v1/devices/events/spark") as spark_only,
            EventRecorder(cloud, f"/v1/devices/{first}/events/spark/status") as status_only,
            EventRecorder(cloud, "/v1/events/app") as firehose,
        ):
            cloud.publish("app/a", "1", device=first)
            cloud.publish("spark/status", "online", device=first)
            cloud.publish("app/b", "2", device=second)
            cloud.publish("spark/x", "3", device=second)
            cloud.publish("done", "", device=first)
            cloud.publish("done", "", device=second)
            everything.wait_for(lambda events: len(events) == 6)
            one_device.wait_for_event("done")
            time.sleep(0.1)  # anything that should not arrive would have by now
    assert [e.data for e in one_device.events] == ["2", "3", ""]
    assert [e.data for e in spark_only.events] == ["online", "3"]
    assert [e.data for e in status_only.events] == ["online"]
    assert [e.data for e in firehose.events] == ["1", "2"]


def test_a_slow_reader_is_cut_off_and_the_others_go_on() -> None:
    with CloudSim(devices=1, stream_limit=3) as sim:
        device = sim.devices[0].id
        slow = sim.subscribe(None)
        fast = sim.subscribe(device)
        for n in range(3):
            sim.publish(device, "n", str(n))
        assert fast.take(1.0)[0].count(b"event: n") == 3
        sim.publish(device, "n", "3")  # the slow one is full: cut off
        assert fast.take(1.0)[0].count(b"event: n") == 1
        batch, end = slow.take(1.0)
        assert end == "drop" and batch.count(b"event: n") == 3  # what it had, then the cut


def test_dropping_streams_cuts_the_connection_without_a_clean_end() -> None:
    with cloud_sim() as cloud:
        url = f"{cloud.api_url}/v1/devices/events"
        with (
            httpx.Client() as http,
            http.stream("GET", url, headers=auth(cloud)) as response,
        ):
            chunks = response.iter_raw()
            assert next(chunks) == b":ok\n\n"
            assert cloud.drop_streams() == 1
            with pytest.raises(httpx.RemoteProtocolError):
                for _ in chunks:
                    pass


def test_closing_the_server_ends_open_streams_cleanly() -> None:
    with cloud_sim() as cloud:
        url = f"{cloud.api_url}/v1/devices/events"
        http = httpx.Client()
        try:
            with http.stream("GET", url, headers=auth(cloud)) as response:
                chunks = response.iter_raw()
                assert next(chunks) == b":ok\n\n"
                assert cloud.sim is not None
                cloud.sim.close()  # what CloudServer.close() does first
                assert b"".join(chunks) == b""  # ends with the terminating chunk
        finally:
            http.close()


def test_429_carries_retry_after() -> None:
    with cloud_sim() as cloud:
        cloud.admin("POST", "throttle", {"requests": 1, "retry_after": 7})
        limited = httpx.get(f"{cloud.api_url}/v1/devices", headers=auth(cloud))
        after = httpx.get(f"{cloud.api_url}/v1/devices", headers=auth(cloud))
    assert limited.status_code == 429 and limited.headers["retry-after"] == "7"
    assert after.status_code == 200


def test_admin_reboot_republishes_the_stamp_event() -> None:
    with cloud_sim(firmware=OLD) as cloud, EventRecorder(cloud) as recorder:
        cloud.admin("POST", f"devices/{cloud.device_name}/reboot")
        events = boot_events(recorder)
    assert events == [
        ("spark/status", "offline"),
        ("spark/status", "online"),
        ("spark/device/last_reset", "pin_reset"),
        ("stamp", report_json(109, GIT_A)),
    ]
