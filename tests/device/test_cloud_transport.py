"""CloudClient and CloudTransport against the simulated cloud over real HTTP/SSE."""

from __future__ import annotations

import itertools
import logging
import socket
import time
from collections.abc import Callable, Iterator

import pytest

from stamp.cli.heard_words import heard_text
from stamp.device.transport.base import Heard, HeardKind, Signal
from stamp.device.transport.cloud import CloudTransport
from stamp.device.transport.cloud_api import CloudClient
from stamp.device.transport.cloud_events import CloudEvent, heard_from_event, parse_cloud_event
from stamp.errors import (
    EXIT_NO_REPORT,
    EXIT_USAGE,
    AuthError,
    DeviceError,
    DeviceUnreachable,
    FlashRefused,
)
from tests.support.cloud import (
    GIT_A,
    GIT_B,
    cloud_sim,
    no_thread_leaks,
    stamp_image,
)

OLD = stamp_image(109, GIT_A)
NEW = stamp_image(111, GIT_B)
TIMEOUT = 20.0


@pytest.fixture(autouse=True)
def _no_thread_leaks() -> Iterator[None]:
    with no_thread_leaks():
        yield


def listen_until(
    transport: CloudTransport,
    stop: Callable[[Heard], bool],
    *,
    on_heard: Callable[[Heard], None] = lambda heard: None,
    timeout: float = TIMEOUT,
) -> list[Heard]:
    """Everything heard up to and including the first item `stop` accepts."""
    heard: list[Heard] = []
    for item in transport.listen(time.monotonic() + timeout):
        heard.append(item)
        on_heard(item)
        if stop(item):
            return heard
    raise AssertionError(f"deadline passed; heard: {[heard_text(h) for h in heard]}")


def texts(heard: list[Heard]) -> list[str]:
    return [heard_text(h) for h in heard]


def is_stamp_event(item: Heard) -> bool:
    return item.report is not None and item.report.source == "cloud event stamp"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# --- CloudClient -------------------------------------------------------------------------


def test_client_lists_and_resolves_devices() -> None:
    with cloud_sim(devices=2, firmware=OLD) as cloud, cloud.client() as client:
        devices = client.list_devices()
        by_name = client.resolve("sim_photon_2")
        by_id = client.resolve(cloud.device_id.upper())
    assert [(d.id, d.name) for d in devices] == [(d["id"], d["name"]) for d in cloud.devices]
    assert all(d.online and d.platform_id == 6 for d in devices)
    assert by_name.id == cloud.devices[1]["id"]
    assert by_id.id == cloud.device_id and by_id.variables == ("stamp",)
    assert by_id.label == f"sim_photon_1 ({cloud.device_id})"


def test_client_reads_the_variable_and_none_when_absent_or_offline() -> None:
    with cloud_sim(firmware=OLD) as cloud, cloud.client() as client:
        value = client.get_variable(cloud.device_id, "stamp")
        unknown = client.get_variable(cloud.device_id, "temperature")
        assert cloud.sim is not None
        cloud.sim.set_online(cloud.device_id, False)
        offline = client.get_variable(cloud.device_id, "stamp")
    assert value == '{"edit":109,"git":"' + GIT_A + '","dirty":false}'
    assert unknown is None and offline is None


def test_client_flash_returns_the_cloud_status() -> None:
    with cloud_sim(firmware=OLD) as cloud, cloud.client() as client:
        assert client.flash(cloud.device_id, "app.bin", NEW) == "Update started"
        assert cloud.sim is not None
        assert [f.app_hash for f in cloud.sim.flashes] == [cloud.sim.flashes[0].app_hash]


def test_an_invalid_binary_is_a_final_refusal_with_the_cloud_reason() -> None:
    with (
        cloud_sim(firmware=OLD) as cloud,
        cloud.client() as client,
        pytest.raises(FlashRefused, match=r"refused to flash junk\.bin") as caught,
    ):
        client.flash(cloud.device_id, "junk.bin", b"not a module" * 20)
    assert "Invalid firmware file" in str(caught.value)
    assert caught.value.exit_code == EXIT_USAGE  # issue 11.8: retrying cannot change it


def test_an_unknown_device_is_a_device_error() -> None:
    with (
        cloud_sim() as cloud,
        cloud.client() as client,
        pytest.raises(DeviceError, match="no such device 'garage'") as caught,
    ):
        client.resolve("garage")
    assert caught.value.exit_code == EXIT_USAGE


def test_a_wrong_token_is_an_auth_error_that_never_shows_the_token(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)  # httpx and httpcore too: they must not log the header
    wrong = "0123456789abcdef0123456789abcdef01234567"
    with cloud_sim() as cloud, CloudClient(cloud.api_url, wrong) as client:
        with pytest.raises(AuthError) as caught:
            client.list_devices()
        transport = CloudTransport(client, cloud.device_id, owns_client=False)
        with pytest.raises(AuthError), transport:
            list(transport.listen(time.monotonic() + 5))
        shown = [str(caught.value), caught.value.detail or "", repr(client), repr(transport)]
    assert str(caught.value) == (
        "the Particle Cloud rejected the token (401): log in again with `particle login` "
        "or set PARTICLE_ACCESS_TOKEN"
    )
    assert caught.value.exit_code == EXIT_USAGE
    assert "HTTP Request: GET" in caplog.text  # httpx did log, at DEBUG
    for text in [*shown, caplog.text]:
        assert wrong not in text
        assert cloud.token not in text


def test_the_token_never_reaches_logs_during_a_whole_session(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    with cloud_sim(firmware=OLD) as cloud:
        transport = CloudTransport(cloud.client(), cloud.device_id)

        def flash_when_connected(item: Heard) -> None:
            if heard_text(item) == "event stream connected":
                transport.client.flash(cloud.device_id, "a.bin", NEW)

        with transport:
            listen_until(transport, is_stamp_event, on_heard=flash_when_connected)
    assert "GET /v1/devices/" in caplog.text
    assert cloud.token not in caplog.text


def test_a_token_that_cannot_be_a_header_is_refused_without_echoing_it() -> None:
    with pytest.raises(AuthError) as caught:
        CloudClient("http://127.0.0.1:1", "sekrit token\n")
    assert "sekrit" not in str(caught.value)


def test_rate_limits_are_waited_out_then_reported() -> None:
    with cloud_sim() as cloud:
        cloud.admin("POST", "throttle", {"requests": 2, "retry_after": 0})
        with cloud.client() as client:
            assert len(client.list_devices()) == 1  # two 429s, then the answer
        cloud.admin("POST", "throttle", {"requests": 1, "retry_after": 120})
        with (
            cloud.client(max_retry_wait=1.0) as client,
            pytest.raises(DeviceUnreachable, match=r"rate limiting .*\(429\)"),
        ):
            client.list_devices()


def test_a_cloud_that_is_down_is_unreachable_with_no_token_in_the_message() -> None:
    token = "sekrit-token-abc123"
    with (
        CloudClient(f"http://127.0.0.1:{free_port()}", token) as client,
        pytest.raises(DeviceUnreachable, match="cannot reach the Particle Cloud") as caught,
    ):
        client.list_devices()
    assert caught.value.exit_code == EXIT_NO_REPORT
    assert token not in str(caught.value)


def test_cloud_answers_are_scrubbed_of_the_token() -> None:
    token = "f00dfeedf00dfeedf00dfeedf00dfeedf00dfeed"
    with CloudClient("http://127.0.0.1:1", token) as client:
        text = f"try opening https://api.particle.io/v1/devices?access_token={token}&x=1"
        assert token not in client.scrub(text)
        assert client.scrub("a " + token + " b") == "a … b"


# --- events -> Heard ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "data", "kind", "source"),
    [
        ("spark/status", "online", HeardKind.STATUS, None),
        ("spark/flash/status", "success ", HeardKind.EVENT, None),
        ("stamp", '{"edit":3,"git":"unknown"}', HeardKind.REPORT, "cloud event stamp"),
        ("stamp", "{not json", HeardKind.EVENT, None),
        ("spark/device/app-hash", "AB" * 32, HeardKind.REPORT, "spark/device/app-hash"),
        ("spark/device/app-hash", "not hex", HeardKind.EVENT, None),
        ("spark/device/app-hash", "", HeardKind.EVENT, None),
    ],
)
def test_events_become_heard_items(
    name: str, data: str, kind: HeardKind, source: str | None
) -> None:
    heard = heard_from_event(CloudEvent(name, data), 1.5)
    assert heard.kind is kind and heard.at == 1.5
    assert (heard.report.source if heard.report else None) == source
    if name == "spark/device/app-hash" and heard.report:
        assert heard.report.identity.app_hash == "ab" * 32


@pytest.mark.parametrize(
    ("name", "data", "signal"),
    [
        ("spark/status", "online", Signal.CAME_ONLINE),
        ("spark/status", "offline", Signal.WENT_OFFLINE),
        ("spark/status", "auto-update", None),
        ("spark/flash/status", "online", None),
    ],
)
def test_status_events_carry_a_typed_signal(name: str, data: str, signal: Signal | None) -> None:
    assert heard_from_event(CloudEvent(name, data), 0.0).signal is signal


def test_the_event_envelope_is_parsed_leniently() -> None:
    event = parse_cloud_event(
        "x",
        '{"data":"d","ttl":60,"published_at":"2026-01-01T00:00:01.500Z","coreid":"abc"}',
    )
    assert event == CloudEvent("x", "d", "2026-01-01T00:00:01.500Z", "abc", 60)
    assert event.published_epoch() == 1767225601.5
    assert parse_cloud_event("x", "plain").data == "plain"
    assert parse_cloud_event("x", '{"data":null}').data == ""
    assert CloudEvent("x", "", published_at="yesterday").published_epoch() is None


# --- CloudTransport end to end -----------------------------------------------------------


def test_transport_reads_the_variable_then_hears_an_ota_to_the_end() -> None:
    with cloud_sim(firmware=OLD) as cloud:
        transport = CloudTransport(cloud.client(), cloud.device_name)

        def flash_when_connected(item: Heard) -> None:
            if heard_text(item) == "event stream connected":
                transport.client.flash(cloud.device_id, "app.bin", NEW)

        with transport:
            heard = listen_until(transport, is_stamp_event, on_heard=flash_when_connected)
    assert transport.describe() == f"Particle device sim_photon_1 via 127.0.0.1:{cloud.port}"
    assert texts(heard)[:2] == [
        f"device sim_photon_1 ({cloud.device_id}) is online",
        "event stream connected",
    ]
    reports = [h.report for h in heard if h.report is not None]
    assert [(r.source, r.identity.edit, r.identity.app_hash is not None) for r in reports] == [
        ("cloud variable stamp", 109, False),
        ("spark/device/app-hash", None, True),
        ("cloud event stamp", 111, False),
    ]
    assert "spark/flash/status: success" in texts(heard)
    assert [heard_text(h) for h in heard if h.kind is HeardKind.STATUS][-2:] == [
        "spark/status: offline",
        "spark/status: online",
    ]
    assert all(a.at <= b.at for a, b in itertools.pairwise(heard))


def test_transport_returns_at_the_deadline_when_nothing_happens() -> None:
    with cloud_sim(firmware=None) as cloud, CloudTransport(cloud.client(), cloud.device_id) as t:
        start = time.monotonic()
        # 2 s, not 0.5: every exchange now ends at the deadline (issue 10), the variable's
        # read included, and a loaded machine needs more than 0.5 s for three of them.
        heard = list(t.listen(start + 2.0))
    assert texts(heard) == [
        f"device sim_photon_1 ({cloud.device_id}) is online",
        "event stream connected",
        "no stamp variable (offline, or an app without stamp)",
    ]


def test_an_offline_device_is_not_asked_for_its_variable() -> None:
    with cloud_sim(firmware=OLD) as cloud:
        assert cloud.sim is not None
        cloud.sim.set_online(cloud.device_id, False)
        with CloudTransport(cloud.client(), cloud.device_id) as transport:
            heard = list(transport.listen(time.monotonic() + 0.5))
    assert texts(heard) == [
        f"device sim_photon_1 ({cloud.device_id}) is offline",
        "event stream connected",
    ]


def test_events_published_before_since_are_ignored() -> None:
    skew = [0.0]  # the simulated cloud's clock: ours plus skew
    with cloud_sim(firmware=OLD, wall_clock=lambda: time.time() + skew[0]) as cloud:
        assert cloud.sim is not None
        sim = cloud.sim
        since = time.time()
        transport = CloudTransport(cloud.client(), cloud.device_id, since=since)

        def publish_when_connected(item: Heard) -> None:
            if heard_text(item) == "event stream connected":
                skew[0] = -10.0
                sim.publish(cloud.device_id, "stamp", '{"edit":1}')  # 10 s before: too old
                skew[0] = 0.0
                sim.publish(cloud.device_id, "stamp", '{"edit":2}')  # after since: counts

        with transport:
            heard = listen_until(transport, is_stamp_event, on_heard=publish_when_connected)
    assert [h.report.identity.edit for h in heard if h.report] == [109, 2]  # variable, then edit 2


@pytest.mark.parametrize("cloud_behind", [30.0, -30.0])
def test_a_skewed_local_clock_neither_hides_nor_admits_reports(cloud_behind: float) -> None:
    """`since` is our clock, published_at the cloud's: the Date header reconciles them."""
    skew = [-cloud_behind]
    with cloud_sim(firmware=OLD, wall_clock=lambda: time.time() + skew[0]) as cloud:
        assert cloud.sim is not None
        sim = cloud.sim
        since = time.time()
        transport = CloudTransport(cloud.client(), cloud.device_id, since=since)

        def publish_when_connected(item: Heard) -> None:
            if heard_text(item) == "event stream connected":
                skew[0] -= 10.0  # an event from 10 s before the start, in the cloud's time
                sim.publish(cloud.device_id, "stamp", '{"edit":1}')
                skew[0] += 10.0
                sim.publish(cloud.device_id, "stamp", '{"edit":2}')

        with transport:
            heard = listen_until(transport, is_stamp_event, on_heard=publish_when_connected)
            assert abs(transport.client.clock_offset + cloud_behind) < 2.0
    assert [h.report.identity.edit for h in heard if h.report] == [109, 2]


def test_a_dropped_stream_is_resumed_and_the_variable_read_again() -> None:
    with cloud_sim(firmware=OLD) as cloud:
        assert cloud.sim is not None
        sim = cloud.sim
        transport = CloudTransport(cloud.client(), cloud.device_id, reconnect_delay=0.05)
        connections = 0

        def drop_then_publish(item: Heard) -> None:
            nonlocal connections
            if heard_text(item) != "event stream connected":
                return
            connections += 1
            if connections == 1:
                assert sim.drop_streams() == 1
            else:
                sim.publish(cloud.device_id, "stamp", '{"edit":112}')

        with transport:
            heard = listen_until(
                transport,
                lambda item: item.report is not None and item.report.identity.edit == 112,
                on_heard=drop_then_publish,
            )
    shown = texts(heard)
    dropped = [t for t in shown if t.startswith("stream dropped")]
    assert len(dropped) == 1 and dropped[0].endswith(", reconnecting")
    assert shown.count("event stream connected") == 2
    assert [h.report.source for h in heard if h.report] == [
        "cloud variable stamp",
        "cloud variable stamp",  # read again: events in the gap are lost
        "cloud event stamp",
    ]


def test_a_cloud_that_stays_down_is_unreachable_at_the_deadline() -> None:
    token = "sekrit-token-abc123"
    client = CloudClient(f"http://127.0.0.1:{free_port()}", token)
    with CloudTransport(client, "my_photon", reconnect_delay=0.05) as transport:
        heard: list[Heard] = []
        with pytest.raises(DeviceUnreachable) as caught:
            for item in transport.listen(time.monotonic() + 0.6):
                heard.append(item)
    assert str(caught.value).startswith("cannot reach the Particle Cloud at 127.0.0.1:")
    assert str(caught.value).endswith("(until the timeout)")
    assert heard and all(heard_text(h).endswith("; retrying") for h in heard)
    assert token not in str(caught.value) + "".join(texts(heard))


def test_a_cloud_that_comes_up_before_the_deadline_is_heard() -> None:
    """Unreachable at first is not an error while the deadline is still ahead."""
    with cloud_sim(firmware=OLD) as cloud:
        assert cloud.sim is not None
        cloud.sim.throttle(1, retry_after=1)
        with CloudTransport(cloud.client(max_retry_wait=0.5), cloud.device_id) as transport:
            heard = listen_until(transport, lambda item: item.report is not None)
    assert any("rate limiting" in t for t in texts(heard))
    assert heard[-1].report is not None and heard[-1].report.identity.edit == 109


def test_an_unknown_device_stops_listening_with_a_device_error() -> None:
    with (
        cloud_sim() as cloud,
        CloudTransport(cloud.client(), "nosuch") as transport,
        pytest.raises(DeviceError),
    ):
        list(transport.listen(time.monotonic() + 5))


def test_closing_the_transport_mid_listen_stops_the_reader() -> None:
    with cloud_sim(firmware=OLD, keepalive=60.0) as cloud:
        transport = CloudTransport(cloud.client(), cloud.device_id)
        stream = transport.listen(time.monotonic() + 60)
        assert "event stream connected" in [heard_text(next(stream)), heard_text(next(stream))]
        transport.close()
        transport.close()  # idempotent
        stream.close()
        assert cloud.sim is not None
        deadline = time.monotonic() + 5
        while cloud.sim.subscriber_count() and time.monotonic() < deadline:
            time.sleep(0.01)
        assert cloud.sim.subscriber_count() == 0
