"""The simulated cloud's HTTP API where the hand-written server got it wrong: accounts,
kept-alive connections after errors, PUT dispatch, products, publish (real HTTP)."""

from __future__ import annotations

import http.client
import json
from collections.abc import Iterator
from urllib.parse import urlencode

import httpx
import pytest

from tests.support.cloud import (
    EventRecorder,
    RunningCloud,
    cloud_sim,
    no_thread_leaks,
    stamp_image,
)

OTHER = "0" * 39 + "1"


@pytest.fixture(autouse=True)
def _no_thread_leaks() -> Iterator[None]:
    with no_thread_leaks():
        yield


def connect(cloud: RunningCloud) -> http.client.HTTPConnection:
    return http.client.HTTPConnection("127.0.0.1", cloud.port, timeout=30)


def ask(
    conn: http.client.HTTPConnection,
    method: str,
    path: str,
    body: bytes | None = None,
    headers: dict[str, str] | None = None,
) -> tuple[int, object]:
    conn.request(method, path, body=body, headers=headers or {})
    response = conn.getresponse()
    return response.status, json.loads(response.read() or b"null")


def test_every_error_answer_leaves_the_kept_alive_connection_usable() -> None:
    with cloud_sim(firmware=stamp_image(5)) as cloud:
        auth = {"Authorization": f"Bearer {cloud.token}"}
        form = {**auth, "Content-Type": "application/x-www-form-urlencoded"}
        conn = connect(cloud)
        try:
            conn.connect()
            sock = conn.sock
            answers = [
                ask(conn, "POST", f"/v1/devices/{cloud.device_id}/led", b"args=x" * 500, form),
                ask(conn, "PUT", "/v1/devices/nosuchdevice", b"x" * 100_000, auth),
                ask(conn, "POST", "/v1/devices/events", b'{"name": "a"}', {}),  # no token
                ask(conn, "POST", "/_sim/publish", b'{"data": 1}', auth),
                ask(conn, "GET", "/v1/nothing/here", None, auth),
                ask(conn, "GET", "/v1/devices", None, auth),
            ]
            assert conn.sock is sock  # never reconnected: one connection for all six
        finally:
            conn.close()
    assert [status for status, _ in answers] == [404, 403, 400, 400, 404, 200]
    assert answers[0][1] == {"ok": False, "error": "Function led not found"}
    assert isinstance(answers[-1][1], list) and len(answers[-1][1]) == 1


def test_another_accounts_devices_are_403_both_ways() -> None:
    with cloud_sim(devices=2, other_token=OTHER) as cloud:
        assert cloud.sim is not None
        theirs = next(d for d in cloud.sim.devices_of("other_user"))
        with httpx.Client(base_url=cloud.api_url) as client:
            mine = client.get("/v1/devices", headers={"Authorization": f"Bearer {cloud.token}"})
            their_list = client.get("/v1/devices", headers={"Authorization": f"Bearer {OTHER}"})
            peek = client.get(
                f"/v1/devices/{theirs.id}", headers={"Authorization": f"Bearer {cloud.token}"}
            )
            back = client.get(
                f"/v1/devices/{cloud.device_id}", headers={"Authorization": f"Bearer {OTHER}"}
            )
    assert [d["id"] for d in mine.json()] == [d["id"] for d in cloud.devices]
    assert [d["id"] for d in their_list.json()] == [theirs.id]
    assert peek.status_code == 403 and back.status_code == 403
    assert peek.json()["error"] == "Permission Denied"


def test_the_deprecated_access_token_body_parameter_is_accepted() -> None:
    with cloud_sim() as cloud:
        body = urlencode({"access_token": cloud.token, "name": "via_body"}).encode()
        conn = connect(cloud)
        try:
            status, answer = ask(
                conn,
                "PUT",
                f"/v1/devices/{cloud.device_id}",
                body,
                {"Content-Type": "application/x-www-form-urlencoded"},
            )
        finally:
            conn.close()
    assert status == 200
    assert isinstance(answer, dict)
    assert (answer["id"], answer["name"]) == (cloud.device_id, "via_body")


@pytest.mark.parametrize("encoding", ["json", "form", "multipart"])
def test_put_dispatches_rename_and_signal_in_every_body_encoding(encoding: str) -> None:
    with cloud_sim() as cloud:
        url = f"{cloud.api_url}/v1/devices/{cloud.device_id}"
        headers = {"Authorization": f"Bearer {cloud.token}"}

        def put(fields: dict[str, str]) -> httpx.Response:
            if encoding == "json":
                return httpx.put(url, headers=headers, json=fields)
            if encoding == "form":
                return httpx.put(url, headers=headers, data=fields)
            parts = {key: (None, value) for key, value in fields.items()}
            return httpx.put(url, headers=headers, files=parts)

        renamed = put({"name": "new_name"})
        signal = put({"signal": "1"})
        nothing = put({"notes": "hello"})
        assert cloud.sim is not None
        device = cloud.sim.find(cloud.device_id)
    assert renamed.status_code == 200 and renamed.json()["name"] == "new_name"
    assert signal.status_code == 200 and signal.json()["signaling"] is True
    assert nothing.status_code == 400
    assert device is not None and device.name == "new_name" and device.signalling


def test_product_streams_carry_only_their_devices_events() -> None:
    with cloud_sim(devices=4, products=2) as cloud:
        assert cloud.sim is not None
        first, second = cloud.sim.products
        with (
            EventRecorder(cloud, f"/v1/products/{first.id}/events") as one,
            EventRecorder(cloud, f"/v1/products/{second.name}/events/app") as two,
            EventRecorder(cloud, "/v1/devices/events/app") as everything,
        ):
            for device in cloud.devices:
                cloud.publish("app/x", device["name"], device=device["id"])
            cloud.publish("done", "", device=cloud.devices[0]["id"])
            everything.wait_for(lambda events: len(events) == 4)
            one.wait_for_event("done")
            two.wait_for(lambda events: len(events) == 2)
        device_page = httpx.get(
            f"{cloud.api_url}/v1/products/{first.id}/devices/{cloud.devices[1]['id']}",
            headers={"Authorization": f"Bearer {cloud.token}"},
        )
    assert [e.data for e in one.events] == ["sim_photon_1", "sim_photon_3", ""]
    assert [e.data for e in two.events] == ["sim_photon_2", "sim_photon_4"]
    assert device_page.status_code == 404  # sim_photon_2 is in the other product


def test_a_published_event_reaches_the_accounts_streams() -> None:
    with cloud_sim() as cloud, EventRecorder(cloud, "/v1/devices/events/test") as recorder:
        response = httpx.post(
            f"{cloud.api_url}/v1/devices/events",
            headers={"Authorization": f"Bearer {cloud.token}"},
            data={"name": "test/ping", "data": "42", "private": "true"},
        )
        events = recorder.wait_for_event("test/ping")
    assert response.json() == {"ok": True}
    assert [(e.name, e.data, e.envelope["coreid"]) for e in events] == [("test/ping", "42", "api")]
