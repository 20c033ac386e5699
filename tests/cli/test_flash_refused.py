"""A refusal that no retry can change is said once, not retried, and exits 2 (issue 11.8).

The case from the issue: a P2 (platform 32) module flashed to a Photon (platform 6) in the
cloud simulator, as its own process.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from stamp.artifact.manifest import Artifact, Manifest, write_manifest
from stamp.artifact.particle.build import build_user_part
from stamp.artifact.particle.module import parse_module
from stamp.identity import Identity
from stamp.record import StampRecord
from tests.support import GitRepo, run_stamp
from tests.support.cloud import cloud_process
from tests.support.verify import GIT_NEW

P2 = 32


def p2_build(directory: Path, *, with_module_facts: bool) -> Path:
    """A P2 user part with a stamp record and its manifest; the .bin's path."""
    directory.mkdir(parents=True, exist_ok=True)
    image = build_user_part(StampRecord(edit=5, git=GIT_NEW, dirty=False).pack(), platform_id=P2)
    module = parse_module(image)
    bin_path = directory / "p2.bin"
    bin_path.write_bytes(image)
    digest = hashlib.sha256(image).hexdigest()
    manifest = Manifest(
        identity=Identity(
            edit=5, git=GIT_NEW, dirty=False, app_hash=module.app_hash, image_sha256=digest
        ),
        recorded_at="2026-01-01T00:00:00Z",
        bin=Artifact(path=bin_path.name, sha256=digest, size=len(image)),
        particle=module.to_json() if with_module_facts else None,
    )
    write_manifest(manifest, directory / "p2.stamp.json")
    return bin_path


def flash_to_photon(repo: GitRepo, image: Path, home: Path) -> tuple[int, str, str, int]:
    # The classic variation: the simulated cloud answers a wrong-platform binary with 400
    # (seeded runs may instead accept it and keep the old firmware, which is retried).
    with cloud_process("--variations", "classic") as cloud:
        done = run_stamp(
            "flash",
            "--device",
            f"particle:{cloud.device_name}",
            "--timeout",
            "30",
            str(image),
            cwd=repo.path,
            env=cloud.env(home=home),
        )
        uploads = len(cloud.flashes())
    return done.returncode, done.stdout, done.stderr, uploads


def test_the_clouds_refusal_is_final(repo: GitRepo, tmp_path: Path) -> None:
    image = p2_build(repo.path / "build", with_module_facts=False)
    code, out, err, uploads = flash_to_photon(repo, image, tmp_path)
    assert code == 2, err
    assert "retrying" not in err and "attempt 2/" not in err
    reason = "the firmware is for platform 32, the device is platform 6"
    assert (out + err).count(reason) == 1, err
    assert uploads == 0  # the simulator refused it before any update began


def test_a_wrong_platform_is_refused_before_uploading(repo: GitRepo, tmp_path: Path) -> None:
    image = p2_build(repo.path / "build", with_module_facts=True)
    code, out, err, uploads = flash_to_photon(repo, image, tmp_path)
    assert code == 2 and out == ""
    assert "built for platform 32 (P2/Photon 2)" in err and "platform 6 (Photon)" in err
    assert err.count("\n") == 1 and uploads == 0
