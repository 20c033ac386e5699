"""`stamp verify` against the cloud simulator over real HTTP/SSE on loopback."""

from __future__ import annotations

import json
import socket
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
from tests.support import GitRepo, run_stamp, spawn_stamp
from tests.support.cloud import RunningCloud, cloud_process, cloud_sim
from tests.support.verify import GIT_NEW, GIT_OLD, Build, make_build, record_history


@pytest.fixture
def builds(repo: GitRepo) -> tuple[Build, Build]:
    """Edit 109 (older, 25 min ago) and edit 111 (newest), both in the repo's history."""
    old = make_build(repo.path / "build", 109, GIT_OLD)
    new = make_build(repo.path / "build", 111, GIT_NEW)
    record_history(repo.path, old, new)
    return old, new


def no_secret(cloud: RunningCloud, *texts: str) -> None:
    for text in texts:
        assert cloud.token not in text


def test_verified_from_the_stamp_variable(
    builds: tuple[Build, Build], repo: GitRepo, tmp_path: Path
) -> None:
    _, new = builds
    with cloud_sim(firmware=new.image.read_bytes()) as cloud:
        done = run_stamp(
            "verify",
            "--device",
            f"particle:{cloud.device_id}",
            "--manifest",
            str(new.manifest_path),
            cwd=repo.path,
            env=cloud.env(home=tmp_path),
        )
    assert done.returncode == 0, done.stderr
    assert done.stdout == "VERIFIED: device runs edit 111 (git 9f8e7d6c)\n"
    assert "event stream connected" in done.stderr
    no_secret(cloud, done.stdout, done.stderr)


def test_older_build_is_a_mismatch_naming_it(
    builds: tuple[Build, Build], repo: GitRepo, tmp_path: Path
) -> None:
    old, _ = builds
    with cloud_sim(firmware=old.image.read_bytes()) as cloud:
        (repo.path / "stamp.toml").write_text(
            f'[devices.garage]\nparticle = "{cloud.device_name}"\n'
        )
        # No --manifest: the newest build in the history (edit 111) is expected.
        done = run_stamp(
            "verify", "--device", "garage", "--json", cwd=repo.path, env=cloud.env(home=tmp_path)
        )
    assert done.returncode == 1, done.stderr
    record = json.loads(done.stdout)
    assert record["message"].startswith(
        "MISMATCH: device runs edit 109 (git 1a2b3c4d, built 25 min ago); expected edit 111"
    )
    assert record["matched_build"]["git"] == GIT_OLD
    assert record["reported"]["source"] == "cloud variable stamp"
    assert record["device"] == f"Particle device {cloud.device_name} via 127.0.0.1:{cloud.port}"
    assert record["manifest"] is None
    no_secret(cloud, done.stdout, done.stderr)


def test_a_device_without_stamp_is_no_report(
    builds: tuple[Build, Build], repo: GitRepo, tmp_path: Path
) -> None:
    with cloud_sim(firmware=None) as cloud:
        done = run_stamp(
            "verify",
            "--device",
            f"particle:{cloud.device_id}",
            "--timeout",
            "1.5",
            cwd=repo.path,
            env=cloud.env(home=tmp_path),
        )
    assert done.returncode == 3, done.stderr
    assert done.stdout.startswith("NO REPORT: nothing identified the build on Particle device ")
    assert "no stamp variable (offline, or an app without stamp)" in done.stdout
    no_secret(cloud, done.stdout, done.stderr)


def test_a_wrong_token_is_exit_2_and_never_shown(
    builds: tuple[Build, Build], repo: GitRepo, tmp_path: Path
) -> None:
    wrong = "wrong-token-3f9a1c77d2"
    with cloud_sim(firmware=None) as cloud:
        env = {**cloud.env(home=tmp_path), "PARTICLE_ACCESS_TOKEN": wrong}
        done = run_stamp(
            "-v", "verify", "--device", f"particle:{cloud.device_id}", cwd=repo.path, env=env
        )
    assert done.returncode == 2, done.stderr
    assert "rejected the token" in done.stderr
    assert "Traceback" not in done.stderr
    for text in (done.stdout, done.stderr):
        assert wrong not in text
    no_secret(cloud, done.stdout, done.stderr)


def test_no_token_at_all_is_exit_2(
    builds: tuple[Build, Build], repo: GitRepo, tmp_path: Path
) -> None:
    env = {"HOME": str(tmp_path), "PARTICLE_API_URL": "http://127.0.0.1:9"}
    done = run_stamp("verify", "--device", "particle:my_photon", cwd=repo.path, env=env)
    assert done.returncode == 2
    assert "no Particle access token" in done.stderr


def test_a_cloud_nobody_serves_is_exit_3(
    builds: tuple[Build, Build], repo: GitRepo, tmp_path: Path
) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {
        "PARTICLE_API_URL": f"http://127.0.0.1:{port}",
        "PARTICLE_ACCESS_TOKEN": "sekrit-token-abc123",
        "HOME": str(tmp_path),
    }
    done = run_stamp(
        "verify", "--device", "particle:my_photon", "--timeout", "1", cwd=repo.path, env=env
    )
    assert done.returncode == 3, done.stderr
    assert "unreachable: cannot reach the Particle Cloud at 127.0.0.1" in done.stdout
    assert "sekrit-token-abc123" not in done.stdout + done.stderr


def test_a_flash_that_did_not_take_is_explained(
    builds: tuple[Build, Build], repo: GitRepo, tmp_path: Path
) -> None:
    """`stamp sim cloud --fail-rate 1`: the device restarts on its old app (no stamp in
    it) and publishes no app hash; `stamp verify`, listening meanwhile, says what it means."""
    _, new = builds
    with cloud_process("--fail-rate", "1", "--seed", "3") as cloud:
        args = ["verify", "--device", f"particle:{cloud.device_id}"]
        args += ["--manifest", str(new.manifest_path), "--timeout", "5"]
        proc = spawn_stamp(*args, cwd=repo.path, env=cloud.env(home=tmp_path))
        try:
            assert proc.stderr is not None
            for line in proc.stderr:
                if "event stream connected" in line:
                    break
            with cloud.client() as client:
                client.flash(cloud.device_id, "app.bin", new.image.read_bytes())
            out, err = proc.communicate(timeout=60)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.communicate()
    assert proc.returncode == 3, err
    assert out.startswith("NO REPORT: ")
    assert "spark/flash/status: success" in err  # what the cloud claimed meanwhile
    assert out.rstrip().endswith(
        "device online, no stamp event; app hash unchanged since last session, "
        "which usually means the flash did not take"
    )
    no_secret(cloud, out, err)


# --- the loop as `stamp flash` will call it: since the flash started, no variable ------


def _flash_and_verify(
    cloud: RunningCloud, image: bytes, expected: Manifest, history: list[Manifest]
) -> tuple[Verdict, list[str]]:
    target = ParticleTarget(cloud.device_id)
    since = time.time()
    heard: list[str] = []
    with open_transport(
        target, Config(root=Path.cwd()), cloud.env(), Path("/nonexistent"), since=since
    ) as transport:
        assert isinstance(transport, CloudTransport) and not transport.read_variable

        def flash_when_connected(item: Heard) -> None:
            heard.append(heard_text(item))
            if heard_text(item) == "event stream connected":
                with cloud.client() as client:
                    client.flash(cloud.device_id, "app.bin", image)

        verdict = verify(transport, expected, history, timeout=20, on_heard=flash_when_connected)
    return verdict, heard


def test_after_a_flash_the_app_hash_event_decides_first(builds: tuple[Build, Build]) -> None:
    old, new = builds
    with cloud_sim(firmware=old.image.read_bytes()) as cloud:
        verdict, heard = _flash_and_verify(
            cloud, new.image.read_bytes(), new.manifest, [old.manifest, new.manifest]
        )
    assert verdict.status is VerdictStatus.VERIFIED
    assert verdict.reported is not None and verdict.reported.source == "spark/device/app-hash"
    assert [c.key for c in verdict.compared] == ["app_hash"]
    assert not any(text.startswith("stamp:") for text in heard)  # decided before it came


def test_after_a_failed_flash_the_old_stamp_event_names_the_build(
    builds: tuple[Build, Build],
) -> None:
    old, new = builds
    with cloud_sim(firmware=old.image.read_bytes(), fail_rate=1.0) as cloud:
        verdict, _ = _flash_and_verify(
            cloud, new.image.read_bytes(), new.manifest, [old.manifest, new.manifest]
        )
    assert verdict.status is VerdictStatus.MISMATCH
    assert verdict.reported is not None and verdict.reported.source == "cloud event stamp"
    assert verdict.matched_build == old.manifest
