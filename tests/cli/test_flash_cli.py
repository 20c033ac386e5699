"""`stamp flash` as a whole process against the cloud simulator on loopback (`stamp sim
cloud` as its own process where the fail rate matters, as a user would run it)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.support import GitRepo, run_stamp
from tests.support.cloud import RunningCloud, cloud_process, cloud_sim
from tests.support.verify import GIT_NEW, GIT_OLD, Build, make_build, record_history

SEED_FAIL_THEN_OK = "12"
"""With --fail-rate 0.5 the simulator's OTA updates go: fail, succeed, fail."""


@pytest.fixture
def builds(repo: GitRepo) -> tuple[Build, Build]:
    """Edit 109 (older, 25 min ago) and edit 111 (newest), both in the repo's history."""
    old = make_build(repo.path / "build", 109, GIT_OLD)
    new = make_build(repo.path / "build", 111, GIT_NEW)
    record_history(repo.path, old, new)
    return old, new


def flash(
    cloud: RunningCloud, image: Path, repo: GitRepo, home: Path, *args: str
) -> tuple[int, str, str]:
    done = run_stamp(
        "flash",
        "--device",
        f"particle:{cloud.device_name}",
        "--timeout",
        "30",
        *args,
        str(image),
        cwd=repo.path,
        env=cloud.env(home=home),
    )
    for text in (done.stdout, done.stderr):
        assert cloud.token not in text
    return done.returncode, done.stdout, done.stderr


def test_a_flaky_ota_is_retried_until_verified(
    builds: tuple[Build, Build], repo: GitRepo, tmp_path: Path
) -> None:
    old, new = builds
    args = ("--fail-rate", "0.5", "--seed", SEED_FAIL_THEN_OK, "--firmware", str(old.image))
    with cloud_process(*args) as cloud:
        code, out, err = flash(cloud, new.image, repo, tmp_path)
        flashes = cloud.flashes()
    assert code == 0, err
    assert [f["succeeded"] for f in flashes] == [False, True]
    assert out.startswith("VERIFIED: device runs edit 111 (git 9f8e7d6c, app hash ")
    attempts = [line for line in err.splitlines() if line.startswith("stamp: attempt ")]
    assert attempts == [
        f"stamp: attempt 1/3: flashing {new.image} (edit 111) over the air to Particle device "
        f"{cloud.device_name} ({cloud.device_id}) via 127.0.0.1:{cloud.port}",
        "stamp: attempt 1/3: MISMATCH: device runs edit 109 (git 1a2b3c4d, built 25 min ago); "
        "expected edit 111; retrying",
        "stamp: attempt 2/3: flashing again",
    ]
    assert err.count('the cloud accepted the upload ("Update started")') == 2
    assert "event: spark/flash/status: success" in err


def test_when_every_ota_fails_it_names_the_old_build(
    builds: tuple[Build, Build], repo: GitRepo, tmp_path: Path
) -> None:
    old, new = builds
    with cloud_process("--fail-rate", "1", "--seed", "3", "--firmware", str(old.image)) as cloud:
        code, out, err = flash(cloud, new.image, repo, tmp_path, "--retries", "2")
        flashes = cloud.flashes()
    assert code == 1, err
    assert len(flashes) == 3 and not any(f["succeeded"] for f in flashes)
    assert out.splitlines() == [
        "MISMATCH: device runs edit 109 (git 1a2b3c4d, built 25 min ago); expected edit 111",
        "  edit: expected 111, device reports 109",
        f"  git: expected {GIT_NEW}, device reports {GIT_OLD}",
    ]
    assert err.count("; expected edit 111; retrying") == 2
    assert "stamp: attempt 3/3: flashing again (the last attempt)" in err


def test_json_gives_every_attempt(
    builds: tuple[Build, Build], repo: GitRepo, tmp_path: Path
) -> None:
    old, new = builds
    with cloud_sim(firmware=old.image.read_bytes(), fail_rate=1.0) as cloud:
        code, out, err = flash(cloud, new.image, repo, tmp_path, "--retries", "1", "--json")
    assert code == 1, err
    record = json.loads(out)
    assert record["status"] == "mismatch"
    assert record["retries"] == 1
    assert record["firmware"] == str(new.image)
    assert record["manifest"] == str(new.manifest_path)
    assert record["device"] == f"particle:{cloud.device_name}"
    assert [a["attempt"] for a in record["attempts"]] == [1, 2]
    for attempt in record["attempts"]:
        assert attempt["flash_error"] is None
        assert attempt["verdict"]["status"] == "mismatch"
        assert attempt["verdict"]["matched_build"]["edit"] == 109
        assert attempt["verdict"]["reported"]["source"] == "cloud event stamp"
    assert record["verdict"] == record["attempts"][-1]["verdict"]
    assert record["message"].startswith("MISMATCH: device runs edit 109 ")


def test_a_stale_manifest_is_refused_before_any_upload(
    builds: tuple[Build, Build], repo: GitRepo, tmp_path: Path
) -> None:
    """The image was rebuilt as edit 111, its manifest still says edit 109."""
    old, new = builds
    old.image.write_bytes(new.image.read_bytes())
    with cloud_sim() as cloud:
        code, out, err = flash(cloud, old.image, repo, tmp_path)
        assert cloud.flashes() == []
    assert code == 2
    assert out == ""
    assert err == (
        f"stamp: error: not flashing {old.image}: manifest {old.manifest_path} describes "
        "another build (it is edit 109, the file is edit 111): run `stamp manifest` after "
        "the build, or pass the right --manifest\n"
    )


def test_a_missing_manifest_is_refused(
    builds: tuple[Build, Build], repo: GitRepo, tmp_path: Path
) -> None:
    _, new = builds
    with cloud_sim() as cloud:
        code, _, err = flash(
            cloud, new.image, repo, tmp_path, "--manifest", str(tmp_path / "nope.stamp.json")
        )
        assert cloud.flashes() == []
    assert code == 2
    assert err.startswith(f"stamp: error: not flashing {new.image}: manifest ")
    assert "does not exist" in err


def test_a_wrong_token_is_exit_2_and_never_shown(
    builds: tuple[Build, Build], repo: GitRepo, tmp_path: Path
) -> None:
    _, new = builds
    wrong = "wrong-token-0123456789abcdef"
    with cloud_sim() as cloud:
        done = run_stamp(
            "flash",
            "--device",
            f"particle:{cloud.device_id}",
            str(new.image),
            cwd=repo.path,
            env={**cloud.env(home=tmp_path), "PARTICLE_ACCESS_TOKEN": wrong},
        )
        assert cloud.flashes() == []
    assert done.returncode == 2
    assert "rejected the token (401)" in done.stderr
    for secret in (wrong, cloud.token):
        assert secret not in done.stdout + done.stderr


def test_a_serial_port_without_a_flash_command_is_exit_2(
    builds: tuple[Build, Build], repo: GitRepo
) -> None:
    _, new = builds
    done = run_stamp("flash", "--device", "serial:/dev/ttyACM0", str(new.image), cwd=repo.path)
    assert done.returncode == 2
    assert done.stderr.startswith("stamp: error: stamp cannot flash serial:/dev/ttyACM0: ")
    assert "flash_command" in done.stderr
