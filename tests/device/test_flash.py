"""The `stamp flash` core: checking the image, building flashers, and the retry loop,
against the cloud simulator over real HTTP/SSE on loopback (in this process)."""

from __future__ import annotations

import io
import shlex
import sys
from dataclasses import replace
from pathlib import Path

import pytest

from stamp.artifact.manifest import Manifest, build_name, write_manifest
from stamp.cli.json_records import flash_record
from stamp.cli.terminal import Progress
from stamp.cli.verdict_words import CAUSE_WORDS, attempt_summary
from stamp.cli.watch import FlashProgress
from stamp.config import Config, DeviceConfig
from stamp.device.flash import FlashResult, flash_and_verify
from stamp.device.flash_image import FlashImage, load_flash_image
from stamp.device.flashers import CloudFlasher, CommandFlasher, command_args, make_flasher
from stamp.device.target import ParticleTarget, SerialTarget, parse_device
from stamp.device.verify import SilenceCause, VerdictStatus
from stamp.errors import ArtifactError, AuthError, ConfigError, DeviceError
from stamp.identity import Identity
from tests.support.cloud import RunningCloud, cloud_sim, no_thread_leaks
from tests.support.verify import GIT_NEW, GIT_OLD, Build, make_build

SEED_FAIL_THEN_OK = 12
"""With fail rate 0.5 the simulator's OTA updates go: fail, succeed, fail."""


@pytest.fixture
def old(tmp_path: Path) -> Build:
    return make_build(tmp_path / "old", 109, GIT_OLD)


@pytest.fixture
def new(tmp_path: Path) -> Build:
    return make_build(tmp_path / "new", 111, GIT_NEW)


def run_flash(
    cloud: RunningCloud,
    image: FlashImage,
    history: list[Manifest],
    *,
    retries: int = 2,
    settle: float = 0.5,
) -> tuple[FlashResult, str]:
    out = io.StringIO()
    with CloudFlasher(cloud.client(), cloud.device_id) as flasher:
        flasher.prepare(image)
        result = flash_and_verify(
            flasher,
            image,
            history,
            retries=retries,
            timeout=20,
            settle=settle,
            watcher=FlashProgress(Progress(out), 20, image, flasher, lines=False, verbose=False),
        )
    return result, out.getvalue()


# --- the image and its manifest -----------------------------------------------------------


def test_the_manifest_beside_the_image_is_used(new: Build) -> None:
    image = load_flash_image(new.image)
    assert image.manifest == new.manifest
    assert image.manifest_path == new.manifest_path
    assert image.bin == new.image and image.elf is None
    assert image.describe() == f"{new.image} (edit 111)"


def test_a_manifest_without_artifacts_matches_by_identity(new: Build, tmp_path: Path) -> None:
    bare = tmp_path / "bare.stamp.json"
    write_manifest(replace(new.manifest, bin=None), bare)
    assert load_flash_image(new.image, bare).manifest.identity.edit == 111


def test_a_stale_manifest_is_refused(old: Build, new: Build) -> None:
    """The image was rebuilt (edit 111) but its manifest still describes edit 109."""
    old.image.write_bytes(new.image.read_bytes())
    with pytest.raises(ArtifactError) as caught:
        load_flash_image(old.image)
    assert str(caught.value) == (
        f"not flashing {old.image}: manifest {old.manifest_path} describes another build "
        "(it is edit 109, the file is edit 111): run `stamp manifest` after the build, "
        "or pass the right --manifest"
    )


def test_a_missing_manifest_is_refused(new: Build) -> None:
    new.manifest_path.unlink()
    with pytest.raises(ArtifactError, match=r"^not flashing .*does not exist.*--manifest"):
        load_flash_image(new.image)


def test_build_names() -> None:
    bare = Manifest(Identity(build_id="ab" * 20), recorded_at="")
    assert build_name(bare) == "build_id abababab…"
    assert build_name(replace(bare, identity=Identity(build_id="ab" * 20, edit=7))) == "edit 7"
    assert build_name(replace(bare, identity=Identity())) == "an unstamped build"


# --- flash commands -------------------------------------------------------------------------


def image_at(tmp_path: Path, build: Build, *, elf: bool = False) -> FlashImage:
    return FlashImage(
        path=build.image,
        manifest=build.manifest,
        manifest_path=build.manifest_path,
        bin=build.image,
        elf=tmp_path / "dir with space" / "app.elf" if elf else None,
    )


def test_placeholders_are_replaced_inside_words(tmp_path: Path, new: Build) -> None:
    image = image_at(tmp_path, new, elf=True)
    args = command_args(
        "openocd -c 'program {elf} verify reset exit' --bin={bin} -p {device}",
        image,
        "/dev/ttyACM0",
        "bench",
    )
    assert args == [
        "openocd",
        "-c",
        f"program {tmp_path}/dir with space/app.elf verify reset exit",
        f"--bin={new.image}",
        "-p",
        "/dev/ttyACM0",
    ]


def test_a_placeholder_without_its_file_is_an_error(tmp_path: Path, new: Build) -> None:
    with pytest.raises(ArtifactError, match=r"needs \{elf\}, but neither .* a matching \.elf"):
        command_args("flash {elf}", image_at(tmp_path, new), "/dev/x", "bench")


@pytest.mark.parametrize("command", ["flash 'unclosed", "   "])
def test_a_command_that_cannot_be_split_is_a_config_error(
    command: str, tmp_path: Path, new: Build
) -> None:
    with pytest.raises(ConfigError, match="flash command of device 'bench'"):
        command_args(command, image_at(tmp_path, new), "/dev/x", "bench")


def test_a_flash_command_that_is_not_installed_is_refused(tmp_path: Path, new: Build) -> None:
    flasher = CommandFlasher(
        "no-such-flasher-xyz {bin}",
        device_name="bench",
        device="/dev/x",
        listen=lambda since, clock: pytest.fail("must not listen"),
        serial=True,
        cwd=tmp_path,
    )
    with pytest.raises(ConfigError, match="runs 'no-such-flasher-xyz', which is not installed"):
        flasher.prepare(image_at(tmp_path, new))


# --- which flasher --------------------------------------------------------------------------


def test_a_serial_url_cannot_be_flashed(tmp_path: Path) -> None:
    config = Config(root=tmp_path)
    with pytest.raises(DeviceError, match=r"^stamp cannot flash serial:/dev/ttyACM0: a port has"):
        make_flasher(parse_device("serial:/dev/ttyACM0", config), config, {}, tmp_path)


def test_a_serial_device_needs_a_flash_command(tmp_path: Path) -> None:
    config = Config(
        root=tmp_path,
        path=tmp_path / "stamp.toml",
        devices={"bench": DeviceConfig("bench", serial="/dev/ttyACM0")},
    )
    with pytest.raises(DeviceError) as caught:
        make_flasher(parse_device("bench", config), config, {}, tmp_path)
    assert str(caught.value) == (
        f"device 'bench' in {tmp_path}/stamp.toml has no flash_command: add one to "
        '[devices.bench], e.g. flash_command = "particle flash --usb {bin}"'
    )


def test_a_configured_command_wins_over_the_cloud(tmp_path: Path) -> None:
    config = Config(
        root=tmp_path,
        devices={"photon": DeviceConfig("photon", particle="abc", flash_command="x {bin}")},
    )
    flasher = make_flasher(parse_device("photon", config), config, {}, tmp_path)
    assert isinstance(flasher, CommandFlasher)
    assert flasher.flash_while_listening  # heard through the cloud: listen first
    assert flasher.device == "abc"
    serial = make_flasher(
        SerialTarget("/dev/x", name="bench"),
        config._replace(devices={"bench": DeviceConfig("bench", "/dev/x", flash_command="x")}),
        {},
        tmp_path,
    )
    assert isinstance(serial, CommandFlasher) and not serial.flash_while_listening


def test_the_cloud_needs_a_token(tmp_path: Path) -> None:
    with pytest.raises(AuthError, match="no Particle access token"):
        make_flasher(ParticleTarget("abc"), Config(root=tmp_path), {}, tmp_path)


def test_an_ota_update_needs_the_bin(tmp_path: Path, new: Build) -> None:
    with cloud_sim() as cloud, CloudFlasher(cloud.client(), cloud.device_id) as flasher:
        with pytest.raises(ArtifactError, match=r"sends the module \.bin"):
            flasher.prepare(replace(image_at(tmp_path, new), bin=None))
        assert cloud.sim is not None and cloud.sim.flashes == []


# --- the retry loop -------------------------------------------------------------------------


def test_a_silent_failure_is_caught_and_flashed_again(new: Build) -> None:
    """SPEC section 1: "success", a restart on the old (unstamped) app, no app hash; the
    attempt ends `settle` seconds after the device is back, not at the timeout."""
    with (
        no_thread_leaks(),
        cloud_sim(fail_rate=0.5, seed=SEED_FAIL_THEN_OK) as cloud,
    ):
        result, progress = run_flash(cloud, load_flash_image(new.image), [new.manifest])
        assert cloud.sim is not None
        assert [f.succeeded for f in cloud.sim.flashes] == [False, True]
    first, second = result.attempts
    assert first.status is VerdictStatus.NO_REPORT
    did_not_take = SilenceCause.FLASH_DID_NOT_TAKE
    assert first.verdict is not None and first.verdict.heard.cause is did_not_take
    assert first.verdict.timeout == first.verdict.elapsed < 20  # it did not wait 20 s
    assert second.status is VerdictStatus.VERIFIED
    assert result.status == "verified"
    assert second.verdict is not None and second.verdict.reported is not None
    assert second.verdict.reported.source == "spark/device/app-hash"
    lines = progress.splitlines()
    assert lines[0].startswith(f"stamp: attempt 1/3: flashing {new.image} (edit 111) over the ")
    assert f"stamp: attempt 1/3: NO REPORT: {CAUSE_WORDS[did_not_take]}; retrying" in lines
    assert "stamp: attempt 2/3: flashing again" in lines
    assert "stamp: [" in progress and "event: spark/flash/status: success" in progress
    assert not any(line.startswith("stamp: attempt 2/3: VERIFIED") for line in lines)


def test_when_no_flash_takes_the_old_build_is_named(old: Build, new: Build) -> None:
    with cloud_sim(firmware=old.image.read_bytes(), fail_rate=1.0) as cloud:
        result, progress = run_flash(
            cloud, load_flash_image(new.image), [old.manifest, new.manifest], retries=1
        )
        assert cloud.sim is not None and len(cloud.sim.flashes) == 2
    assert [a.status for a in result.attempts] == [VerdictStatus.MISMATCH] * 2
    final = result.verdict
    assert final is not None and final.matched_build == old.manifest
    assert attempt_summary(result.final).startswith(
        "MISMATCH: device runs edit 109 (git 1a2b3c4d, built 25 min ago); expected edit 111"
    )
    assert "stamp: attempt 2/2: flashing again (the last attempt)" in progress
    record = flash_record(result)
    assert record["status"] == "mismatch"
    assert [a["verdict"]["status"] for a in record["attempts"]] == ["mismatch", "mismatch"]
    assert record["verdict"] == record["attempts"][-1]["verdict"]


def test_a_flash_command_that_fails_is_a_failed_attempt(tmp_path: Path, new: Build) -> None:
    """Every attempt's command exits 3: three failed flashes, its output shown, no upload."""
    script = tmp_path / "flash tool.py"
    script.write_text(
        "import sys\nprint('flashing', sys.argv[1])\nprint('no DFU device', file=sys.stderr)\n"
        "sys.exit(3)\n"
    )
    command = f"{shlex.quote(sys.executable)} {shlex.quote(str(script))} {{bin}}"
    out = io.StringIO()
    with cloud_sim() as cloud:
        config = Config(
            root=tmp_path,
            api_url=cloud.api_url,
            devices={
                "photon": DeviceConfig("photon", particle=cloud.device_id, flash_command=command)
            },
        )
        image = load_flash_image(new.image)
        with make_flasher(parse_device("photon", config), config, cloud.env(), tmp_path) as f:
            f.prepare(image)
            watcher = FlashProgress(Progress(out), 10, image, f, lines=False, verbose=False)
            result = flash_and_verify(f, image, [], timeout=10, watcher=watcher)
        assert cloud.sim is not None and cloud.sim.flashes == []
    assert [a.flash_error for a in result.attempts] == [
        "the flash command exited with status 3"
    ] * 3
    assert result.status == "flash_failed" and result.verdict is None
    assert attempt_summary(result.final) == "FLASH FAILED: the flash command exited with status 3"
    text = out.getvalue()
    assert text.count(f"  flashing {new.image.absolute()}\n") == 3
    assert text.count("  no DFU device\n") == 3
    assert (
        "stamp: attempt 2/3: FLASH FAILED: the flash command exited with status 3; retrying" in text
    )
