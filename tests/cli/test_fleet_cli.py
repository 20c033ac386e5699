"""`stamp fleet` as a person or a CI job runs it: words, --json per device, exit codes.

In process (click's runner underneath `run`), against a simulated product served over
real HTTP on loopback, with the build history of a real git checkout.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from stamp.artifact.history import History
from stamp.cli.app import run
from stamp.config import load_config
from stamp.state_dir import find_state_dir
from tests.support import GitRepo
from tests.support.cloud import GIT_B, no_thread_leaks
from tests.support.fleet import FleetScene, ProductBuild, fleet_cloud, product_build


@pytest.fixture(autouse=True)
def _no_thread_leaks() -> Iterator[None]:
    with no_thread_leaks(grace=10.0):
        yield


@pytest.fixture
def builds(repo: GitRepo, monkeypatch: pytest.MonkeyPatch) -> dict[str, ProductBuild]:
    """v1 and v2 recorded in the checkout's history (v2 the newest); a rogue build not."""
    monkeypatch.chdir(repo.path)
    made = {
        "v1": product_build(repo.path / "build", 11, 1),
        "v2": product_build(repo.path / "build", 12, 2),
        "rogue": product_build(repo.path / "elsewhere", 13, 2, git=GIT_B),
    }
    with History.open(find_state_dir(load_config(cwd=repo.path))) as history:
        history.append(made["v1"].manifest, None)
        history.append(made["v2"].manifest, None)
    return made


def use_cloud(scene: FleetScene, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Point stamp at the scene's simulated cloud, with its token and a HOME of its own."""
    monkeypatch.setenv("PARTICLE_API_URL", scene.cloud.api_url)
    monkeypatch.setenv("PARTICLE_ACCESS_TOKEN", scene.cloud.token)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("NO_COLOR", "1")


def fleet(
    scene: FleetScene,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    *args: str,
) -> int:
    use_cloud(scene, monkeypatch, tmp_path)
    return run(["fleet", "--product", str(scene.product.id), "--listen", "0.3", *args])


def test_help_shows_examples(capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["fleet", "--help"]) == 0
    out = capsys.readouterr().out
    assert "stamp fleet --product my-product --group beta" in out
    assert "10,000 requests per 5 minutes" in out


def test_every_online_device_on_the_expected_build_is_exit_0(
    builds: dict[str, ProductBuild],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    with fleet_cloud(200, builds["v2"].image) as scene:
        scene.offline(scene.take(12))  # offline devices do not spoil it
        scene.never_seen(scene.take(3))
        code = fleet(scene, monkeypatch, tmp_path)  # the newest build of the history
    out, err = capsys.readouterr()
    assert code == 0, out + err
    assert out.startswith("FLEET OK: 185 of 185 online devices of product 10001")
    assert "    12  offline" in out
    assert "     3  never seen by the cloud" in out
    assert "using the newest build in the history" in err
    assert "Traceback" not in err


def test_a_device_on_another_build_is_exit_1_and_named(
    builds: dict[str, ProductBuild],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    with fleet_cloud(150, builds["v2"].image) as scene:
        behind = scene.take(9)
        scene.install(behind, builds["v1"].image)
        rogue = scene.take(2)
        scene.install(rogue, builds["rogue"].image)
        scene.silent(scene.take(3))
        code = fleet(
            scene, monkeypatch, tmp_path, "--manifest", str(builds["v2"].manifest_path), "--json"
        )
    out, err = capsys.readouterr()
    assert code == 1, err
    record = json.loads(out)
    assert record["status"] == "mismatch"
    assert record["counts"] == {
        "expected": 136,
        "other": 9,
        "unknown": 2,
        "silent": 3,
        "offline": 0,
        "never_seen": 0,
    }
    devices = {d["id"]: d for d in record["devices"]}
    assert len(devices) == 150
    for device_id in behind:
        assert devices[device_id]["status"] == "other"
        assert devices[device_id]["build"]["edit"] == 11
        assert devices[device_id]["reported"]["edit"] == 11
        assert devices[device_id]["particle"]["firmware_version"] == 1
    for device_id in rogue:
        assert devices[device_id]["status"] == "unknown"
        assert devices[device_id]["reported"]["git"] == GIT_B
    silent = [d for d in record["devices"] if d["status"] == "silent"]
    assert [d["silence"] for d in silent] == ["no_variable"] * 3
    assert record["variable_reads"] == 150


def test_silent_devices_and_no_mismatch_is_exit_3_with_words(
    builds: dict[str, ProductBuild],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    with fleet_cloud(120, builds["v2"].image) as scene:
        quiet = scene.take(5)
        scene.silent(quiet)
        code = fleet(scene, monkeypatch, tmp_path)
    out, err = capsys.readouterr()
    assert code == 3, err
    assert out.startswith("FLEET INCOMPLETE: 115 of 120 online devices")
    assert "5 stayed silent" in out
    for device_id in quiet:
        assert f"{device_id}): silent: no stamp event and no stamp variable" in out


def test_the_group_filter_and_particles_view(
    builds: dict[str, ProductBuild],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    with fleet_cloud(160, builds["v2"].image) as scene:
        scene.sim.add_product_firmware(scene.product, 2, builds["v2"].image)
        beta = scene.take(80)
        scene.groups(beta, "beta")
        scene.groups(scene.take(80), "production")
        scene.sim.release(scene.product, 2, groups=("beta",))
        scene.settle()
        scene.install(beta[:4], builds["rogue"].image)  # calls itself version 2
        code = fleet(scene, monkeypatch, tmp_path, "--group", "beta", "--json")
        missing = fleet(scene, monkeypatch, tmp_path, "--group", "nobody")
    out, err = capsys.readouterr()
    assert code == 1, err
    record = json.loads(out)
    assert record["group"] == "beta"
    assert {d["id"] for d in record["devices"]} == set(beta)
    assert record["counts"]["unknown"] == 4
    assert record["particle_disagrees"] == 4
    flagged = {d["id"] for d in record["devices"] if d["particle"]["view"] == "disagrees"}
    assert flagged == set(beta[:4])
    assert missing == 2
    assert "no device of product 10001 is in group 'nobody'" in err


def test_an_unknown_product_is_exit_2(
    builds: dict[str, ProductBuild],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    with fleet_cloud(1, builds["v2"].image) as scene:
        use_cloud(scene, monkeypatch, tmp_path)
        code = run(["fleet", "--product", "no-such-product"])
    _, err = capsys.readouterr()
    assert code == 2
    assert "no product 'no-such-product'" in err
    assert scene.cloud.token not in err
    assert "Traceback" not in err


def test_a_build_pulled_from_ci_is_named_with_where_it_was_built(
    repo: GitRepo,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from dataclasses import asdict

    from stamp.artifact.history import Origin
    from stamp.artifact.history.records import note_line

    monkeypatch.chdir(repo.path)
    ci_build = product_build(repo.path / "ci", 214, 1)
    current = product_build(repo.path / "build", 215, 2)
    with History.open(find_state_dir(load_config(cwd=repo.path))) as history:
        history.append(current.manifest, None)
        line = note_line(
            ci_build.manifest.to_json(), asdict(Origin(host="ci-7", user="runner", ci=True))
        )
        history.add_pulled([line], "origin", "2026-12-01T00:00:00Z")
    with fleet_cloud(40, current.image) as scene:
        scene.install(scene.take(3), ci_build.image)
        code = fleet(scene, monkeypatch, tmp_path)
        json_code = fleet(scene, monkeypatch, tmp_path, "--json")
    out, err = capsys.readouterr()
    assert code == json_code == 1, err
    text, record = out.split("\n{", 1)
    assert "       3    edit 214, git 1a2b3c4d" in text
    assert "built by CI on host ci-7" in text
    other = [d for d in json.loads("{" + record)["devices"] if d["status"] == "other"]
    assert [d["build"]["origin"] for d in other] == [
        {"host": "ci-7", "user": "runner", "ci": True}
    ] * 3
