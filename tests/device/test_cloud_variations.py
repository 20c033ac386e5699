"""stamp's cloud client and verifier under every variation the simulated cloud plays.

The real cloud's OTA story varies (hash case, app-hash before or after last_reset,
`particle/device/updates/*` events, offline and online with one timestamp, seconds
between steps), it answers a missing token 400 and a wrong one 401, holds a variable read
~30 s for a silent device, and streams may carry only keep-alives or drop mid-way. For a
seed matrix of those, `stamp flash` and `stamp verify` must reach the right verdict.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from stamp.artifact.manifest import Manifest
from stamp.cli.heard_words import heard_text
from stamp.config import Config
from stamp.device.target import ParticleTarget, open_transport
from stamp.device.transport.base import Heard
from stamp.device.transport.cloud import CloudTransport
from stamp.device.verify import Verdict, VerdictStatus, verify
from stamp.errors import AuthError, DeviceUnreachable, FlashRefused
from stamp.sim.cloud import Variation
from stamp.sim.cloud_model import SimTiming
from tests.support import GitRepo, run_stamp
from tests.support.cloud import FAST, RunningCloud, cloud_process, cloud_sim, stamp_image
from tests.support.verify import Build, make_build, record_history

MATRIX = [(Variation.CLASSIC, 1), (Variation.FIELD, 1)] + [
    (Variation.SEEDED, seed) for seed in range(1, 9)
]
CORRUPT = stamp_image(5)[:-1] + b"\x00"


@pytest.fixture
def builds(repo: GitRepo) -> tuple[Build, Build]:
    """Edit 109 (older) and edit 111 (newest), both in the repo's history."""
    old = make_build(repo.path / "build", 109, "1a2b3c4d5e6f" + "0" * 28)
    new = make_build(repo.path / "build", 111, "9f8e7d6c5b4a" + "1" * 28)
    record_history(repo.path, old, new)
    return old, new


def flash_and_verify(
    cloud: RunningCloud,
    image: bytes,
    expected: Manifest,
    history: list[Manifest],
    *,
    drop_first: bool = False,
    timeout: float = 20,
) -> tuple[Verdict, list[str]]:
    """What `stamp flash` does after its upload: listen from the flash on, verify."""
    target = ParticleTarget(cloud.device_id)
    heard: list[str] = []
    with open_transport(
        target, Config(root=Path.cwd()), cloud.env(), Path("/nonexistent"), since=time.time()
    ) as transport:
        assert isinstance(transport, CloudTransport)

        def on_heard(item: Heard) -> None:
            heard.append(heard_text(item))
            if heard_text(item) == "event stream connected":
                if drop_first and heard.count(heard_text(item)) == 1:
                    assert cloud.drop_streams() == 1
                    return
                with cloud.client() as client:
                    client.flash(cloud.device_id, "app.bin", image)

        verdict = verify(transport, expected, history, timeout=timeout, on_heard=on_heard)
    return verdict, heard


@pytest.mark.parametrize(("variation", "seed"), MATRIX)
@pytest.mark.parametrize("fails", [False, True])
def test_the_verdict_is_right_whatever_the_ota_story(
    builds: tuple[Build, Build], variation: Variation, seed: int, fails: bool
) -> None:
    old, new = builds
    with cloud_sim(
        firmware=old.image.read_bytes(),
        variation=variation,
        seed=seed,
        fail_rate=1.0 if fails else 0.0,
    ) as cloud:
        verdict, heard = flash_and_verify(
            cloud, new.image.read_bytes(), new.manifest, [old.manifest, new.manifest]
        )
    if fails:
        assert verdict.status is VerdictStatus.MISMATCH, heard
        assert verdict.matched_build == old.manifest
    else:
        assert verdict.status is VerdictStatus.VERIFIED, heard
        assert verdict.reported is not None
        assert verdict.reported.identity.app_hash == new.manifest.identity.app_hash


@pytest.mark.parametrize("variation", ["field", "seeded"])
def test_stamp_flash_verifies_against_stamp_sim_cloud(
    builds: tuple[Build, Build], repo: GitRepo, tmp_path: Path, variation: str
) -> None:
    old, new = builds
    args = ("--variations", variation, "--seed", "4", "--firmware", str(old.image))
    with cloud_process(*args, "--speed", "20") as cloud:
        done = run_stamp(
            *("flash", "--device", f"particle:{cloud.device_name}", "--timeout", "30"),
            str(new.image),
            cwd=repo.path,
            env=cloud.env(home=tmp_path),
        )
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("VERIFIED: device runs edit 111 (git 9f8e7d6c, app hash ")
    assert cloud.token not in done.stdout + done.stderr


def test_a_bad_binary_is_refused_or_accepted_and_not_run_as_the_seed_says(
    builds: tuple[Build, Build],
) -> None:
    """Undocumented on the real cloud: the simulator draws 400 or "accepted, old firmware"."""
    old, new = builds
    outcomes = set()
    for seed in range(1, 9):
        with cloud_sim(
            firmware=old.image.read_bytes(), variation=Variation.SEEDED, seed=seed
        ) as cloud:
            try:
                verdict, _ = flash_and_verify(
                    cloud, CORRUPT, new.manifest, [old.manifest, new.manifest]
                )
            except FlashRefused as exc:  # final: `stamp flash` does not retry it
                assert "Invalid firmware file" in str(exc)
                outcomes.add("refused")
                continue
            assert cloud.sim is not None
            assert [f.succeeded for f in cloud.sim.flashes] == [False]
            # Accepted, and the device boots its old build: the verdict names it.
            assert verdict.status is VerdictStatus.MISMATCH
            assert verdict.matched_build == old.manifest
            outcomes.add("accepted")
    assert outcomes == {"refused", "accepted"}


def test_no_token_400_and_a_wrong_token_401_are_both_auth_errors() -> None:
    with cloud_sim(firmware=stamp_image(5)) as cloud:
        with cloud.client() as client:
            # An intermediary that strips the Authorization header: the cloud's 400.
            del client._http.headers["Authorization"]
            for call in (
                client.list_devices,
                lambda: client.resolve(cloud.device_id),
                lambda: client.flash(cloud.device_id, "a.bin", stamp_image(6)),
            ):
                with pytest.raises(AuthError) as stripped:
                    call()
                assert "The access token was not found" in (stripped.value.detail or "")
        with cloud.client() as client:
            client._token = "f" * 40
            client._http.headers["Authorization"] = "Bearer " + "f" * 40
            with pytest.raises(AuthError) as wrong:
                client.list_devices()
            assert "invalid" in (wrong.value.detail or "")


def test_a_variable_read_of_a_silent_device_waits_for_the_408_within_bounds() -> None:
    timing = SimTiming(unanswered=1.0)
    with cloud_sim(firmware=stamp_image(5), timing=timing) as cloud:
        assert cloud.sim is not None
        cloud.sim.vanish(cloud.device_id)
        with cloud.client(timeout=0.5) as client:
            started = time.monotonic()
            assert client.get_variable(cloud.device_id, "stamp", wait=10.0) is None  # the 408
            assert time.monotonic() - started >= 1.0  # it was held, past the 0.5 s timeout
            with pytest.raises(DeviceUnreachable) as stalled:
                client.get_variable(cloud.device_id, "stamp", wait=0.2)
    assert "gave no answer within 0.2 s" in str(stalled.value)


def test_verify_of_a_silent_device_ends_at_its_timeout_saying_what_it_saw(
    builds: tuple[Build, Build], repo: GitRepo, tmp_path: Path
) -> None:
    _, new = builds
    with cloud_process("--speed", "1", "--firmware", str(new.image)) as cloud:
        cloud.admin("POST", f"devices/{cloud.device_id}/vanish")
        done = run_stamp(
            *("verify", "--device", f"particle:{cloud.device_id}", "--timeout", "3"),
            *("--manifest", str(new.manifest_path)),
            cwd=repo.path,
            env=cloud.env(home=tmp_path),
        )
    assert done.returncode == 3, done.stderr
    assert "could not read the stamp variable: the Particle Cloud gave no answer within" in (
        done.stderr
    )


def test_a_stream_of_keepalives_only_is_no_report_without_reconnects(
    builds: tuple[Build, Build],
) -> None:
    _, new = builds
    with cloud_sim(firmware=None, keepalive=0.05) as cloud:
        target = ParticleTarget(cloud.device_id)
        heard: list[str] = []
        with open_transport(
            target, Config(root=Path.cwd()), cloud.env(), Path("/nonexistent"), since=time.time()
        ) as transport:
            verdict = verify(
                transport,
                new.manifest,
                [new.manifest],
                timeout=1.5,
                on_heard=lambda item: heard.append(heard_text(item)),
            )
    assert verdict.status is VerdictStatus.NO_REPORT
    assert heard.count("event stream connected") == 1
    assert not any("dropped" in text for text in heard)


def test_a_dropped_and_resumed_stream_still_verifies(builds: tuple[Build, Build]) -> None:
    old, new = builds
    with cloud_sim(firmware=old.image.read_bytes(), variation=Variation.FIELD) as cloud:
        verdict, heard = flash_and_verify(
            cloud,
            new.image.read_bytes(),
            new.manifest,
            [old.manifest, new.manifest],
            drop_first=True,
        )
    assert verdict.status is VerdictStatus.VERIFIED, heard
    assert any(text.startswith("stream dropped") for text in heard)
    assert heard.count("event stream connected") == 2


def test_real_pace_scales_with_speed() -> None:
    assert SimTiming.real_pace(1.0).unanswered == 30.0
    assert SimTiming.real_pace(30.0).transfer == pytest.approx(0.1)
    assert FAST.boot < SimTiming.real_pace(1.0).boot
