"""`stamp.device.fleet.survey` against a simulated Particle product over real HTTP/SSE.

Hundreds of devices, each put into a known state, so every category's count is exact:
the expected build, another build of the history, an unknown build, silent, offline,
never seen; and Particle's own view set against what each device reports.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from stamp.device.fleet import (
    CloudView,
    DeviceStatus,
    FleetOutcome,
    FleetReport,
    Silence,
    survey,
)
from stamp.device.transport.rate import RequestBudget
from stamp.device.verify import History
from tests.support.cloud import GIT_B, no_thread_leaks, report_json
from tests.support.fleet import (
    FleetScene,
    ProductBuild,
    fleet_cloud,
    product_build,
    unstamped_image,
)


@pytest.fixture(autouse=True)
def _no_thread_leaks() -> Iterator[None]:
    with no_thread_leaks(grace=10.0):
        yield


@pytest.fixture
def builds(tmp_path: Path) -> dict[str, ProductBuild]:
    return {
        "v1": product_build(tmp_path, 11, 1),
        "v2": product_build(tmp_path, 12, 2),
        # A build that says it is version 2 but is not the released one (an edit later,
        # another commit): Particle cannot tell them apart, stamp can.
        "rogue": product_build(tmp_path / "rogue", 13, 2, git=GIT_B),
    }


def run_survey(
    scene: FleetScene,
    expected: ProductBuild,
    history: History,
    *,
    group: str | None = None,
    timeout: float = 120.0,
    listen_first: float = 0.3,
) -> FleetReport:
    with scene.cloud.client(budget=RequestBudget()) as client:
        return survey(
            client,
            str(scene.product.id),
            expected.manifest,
            history,
            timeout=timeout,
            group=group,
            listen_first=listen_first,
        )


def counts(report: FleetReport) -> dict[str, int]:
    return {status.value: report.count(status) for status in DeviceStatus}


def test_every_category_is_counted_exactly(builds: dict[str, ProductBuild]) -> None:
    v1, v2, rogue = builds["v1"], builds["v2"], builds["rogue"]
    with fleet_cloud(300, v2.image) as scene:
        scene.sim.add_product_firmware(scene.product, 2, v2.image)
        scene.sim.release(scene.product, 2, product_default=True)  # everyone is on it
        scene.settle()
        older = scene.take(20)
        scene.install(older, v1.image)
        unknown = scene.take(10)
        scene.install(unknown, rogue.image)
        silent = scene.take(15)
        scene.silent(silent)
        unstamped = scene.take(5)
        scene.install(unstamped, unstamped_image(2))
        offline = scene.take(25)
        scene.offline(offline)
        never = scene.take(5)
        scene.never_seen(never)
        report = run_survey(scene, v2, [v1.manifest])
    assert counts(report) == {
        "expected": 220,
        "other": 20,
        "unknown": 10,
        "silent": 20,
        "offline": 25,
        "never_seen": 5,
    }
    assert report.outcome is FleetOutcome.MISMATCH
    by_id = {d.device.info.id: d for d in report.devices}
    assert {by_id[i].status for i in older} == {DeviceStatus.OTHER}
    assert all(by_id[i].build is not None for i in older)
    assert {b.manifest.identity.edit for i in older if (b := by_id[i].build)} == {11}
    assert {by_id[i].silence for i in silent + unstamped} == {Silence.NO_VARIABLE}
    assert {by_id[i].status for i in never} == {DeviceStatus.NEVER_SEEN}
    # Particle believes the rogue devices run the released version 2: they do not.
    assert {d.device.info.id for d in report.disagreeing} == set(unknown)
    assert {by_id[i].cloud_view for i in older} == {CloudView.AGREES}  # version 1, known
    assert not report.timed_out
    assert report.variable_reads == 270  # every online device, none twice


def test_reports_on_the_stream_need_no_variable_read(builds: dict[str, ProductBuild]) -> None:
    v1, v2 = builds["v1"], builds["v2"]
    with fleet_cloud(200, v2.image) as scene:
        result: list[FleetReport] = []
        thread = threading.Thread(
            target=lambda: result.append(run_survey(scene, v2, [v1.manifest], listen_first=30))
        )
        thread.start()
        _wait_for_stream(scene)
        # Every device boots and publishes its own `stamp` event (after a rollout, say).
        for device_id in scene.ids[:150]:
            scene.sim.publish(device_id, "stamp", report_json(12))
        for device_id in scene.ids[150:]:
            scene.sim.publish(device_id, "stamp", report_json(11))
        thread.join()
    (report,) = result
    assert counts(report)["expected"] == 150
    assert counts(report)["other"] == 50
    assert report.variable_reads == 0
    assert report.events == 200


def test_a_429_pauses_the_reads_and_the_survey_still_counts_right(
    builds: dict[str, ProductBuild],
) -> None:
    v1, v2 = builds["v1"], builds["v2"]
    with fleet_cloud(120, v2.image) as scene:
        scene.install(scene.take(7), v1.image)
        scene.sim.throttle(6, retry_after=1)  # the next six requests get 429 Retry-After: 1
        report = run_survey(scene, v2, [v1.manifest])
    assert report.rate_limited >= 1
    assert counts(report)["expected"] == 113
    assert counts(report)["other"] == 7


def test_a_group_is_surveyed_alone(builds: dict[str, ProductBuild]) -> None:
    v1, v2 = builds["v1"], builds["v2"]
    with fleet_cloud(150, v2.image) as scene:
        beta = scene.take(60)
        scene.groups(beta, "beta")
        rest = scene.take(90)
        scene.groups(rest, "production")
        scene.install(rest[:30], v1.image)  # the production group is behind
        report = run_survey(scene, v2, [v1.manifest], group="beta")
    assert len(report.devices) == 60
    assert {d.device.info.id for d in report.devices} == set(beta)
    assert report.outcome is FleetOutcome.ALL_EXPECTED


def test_only_silence_is_its_own_outcome(builds: dict[str, ProductBuild]) -> None:
    v2 = builds["v2"]
    with fleet_cloud(100, v2.image) as scene:
        scene.silent(scene.take(4))
        scene.offline(scene.take(10))
        report = run_survey(scene, v2, [])
    assert report.outcome is FleetOutcome.SILENT
    assert counts(report) == {
        "expected": 86,
        "other": 0,
        "unknown": 0,
        "silent": 4,
        "offline": 10,
        "never_seen": 0,
    }


def test_the_timeout_ends_a_survey_of_silent_devices(builds: dict[str, ProductBuild]) -> None:
    v2 = builds["v2"]
    with fleet_cloud(30, v2.image) as scene:
        report = run_survey(scene, v2, [], timeout=1.0, listen_first=30)
    # listen_first is capped at a quarter of the timeout: the reads happen in time.
    assert counts(report)["expected"] == 30
    assert report.variable_reads == 30


def _wait_for_stream(scene: FleetScene) -> None:
    import time

    deadline = time.monotonic() + 60
    while scene.sim.subscriber_count() == 0:
        assert time.monotonic() < deadline, "the survey never opened the product stream"
        time.sleep(0.01)


def test_after_a_flaky_rollout_the_counts_are_the_simulators_truth(
    builds: dict[str, ProductBuild],
) -> None:
    v1, v2 = builds["v1"], builds["v2"]
    with fleet_cloud(300, v1.image, fail_rate=0.3, seed=9) as scene:
        scene.sim.add_product_firmware(scene.product, 2, v2.image)
        scene.sim.release(scene.product, 2, product_default=True, rollout=0.5)
        scene.sim.churn(scene.product, leave=0.1, never_back=0.05, window=0.5, away=(0.1, 0.3))
        scene.settle()
        truth = Counter(
            ("online" if d.online else "offline", d.firmware.product_version)
            for d in scene.sim.devices
        )
        report = run_survey(scene, v2, [v1.manifest])
    assert counts(report) == {
        "expected": truth["online", 2],
        "other": truth["online", 1],
        "unknown": 0,
        "silent": 0,
        "offline": truth["offline", 1] + truth["offline", 2],
        "never_seen": 0,
    }
    assert truth["online", 1] > 0 and truth["online", 2] > 0  # the OTA did fail for some
    assert truth["offline", 1] + truth["offline", 2] > 0  # some never reconnected
    assert report.disagreeing == ()  # the simulated cloud's view is the devices' own


def test_a_device_list_page_beyond_the_bound_is_refused(
    builds: dict[str, ProductBuild], monkeypatch: pytest.MonkeyPatch
) -> None:
    import stamp.device.transport.cloud_devices as cloud_devices
    from stamp.errors import ConfigError

    monkeypatch.setattr(cloud_devices, "MAX_PAGE_BYTES", 4096)  # a page of 20 is ~20 KB
    with fleet_cloud(20, builds["v2"].image) as scene, scene.cloud.client() as client:
        with pytest.raises(
            ConfigError,
            match=r"devices is larger than 4 KiB, where a device list is about 1 KB per device",
        ):
            list(client.list_product_devices(str(scene.product.id)))
        assert len(list(client.list_product_devices(str(scene.product.id), per_page=2))) == 20
