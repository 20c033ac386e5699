"""`stamp verify` without --manifest checks what `stamp flash` last put on that device
(issue 11, item 9), against the cloud simulator as its own process."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from stamp.config import load_config
from stamp.device.last_flashed import FILE_NAME
from stamp.state_dir import find_state_dir
from tests.support import GitRepo, run_stamp
from tests.support.cloud import cloud_process
from tests.support.verify import GIT_NEW, GIT_OLD, Build, make_build, record_history


@dataclass(frozen=True)
class Flashed:
    """Edit 109 flashed by `stamp flash` to a device that ran 111, the history's newest."""

    old: Build
    new: Build
    device: str
    env: dict[str, str]
    repo: GitRepo

    def verify(self) -> subprocess.CompletedProcess[str]:
        """`stamp verify` with no --manifest."""
        return run_stamp(
            "verify", "--device", self.device, "--timeout", "20", cwd=self.repo.path, env=self.env
        )


@contextmanager
def old_build_flashed(repo: GitRepo, tmp_path: Path) -> Iterator[Flashed]:
    old = make_build(repo.path / "build", 109, GIT_OLD)
    new = make_build(repo.path / "build", 111, GIT_NEW)
    record_history(repo.path, old, new)  # the newest build in the history is 111
    with cloud_process("--firmware", str(new.image)) as cloud:
        env = cloud.env(home=tmp_path)
        device = f"particle:{cloud.device_name}"
        flashed = run_stamp(
            "flash", "--device", device, "--timeout", "30", str(old.image), cwd=repo.path, env=env
        )
        assert flashed.returncode == 0, flashed.stderr
        yield Flashed(old, new, device, env, repo)


def test_verify_uses_the_build_last_flashed_to_the_device(repo: GitRepo, tmp_path: Path) -> None:
    with old_build_flashed(repo, tmp_path) as flashed:
        verified = flashed.verify()
    old, device = flashed.old, flashed.device
    assert verified.returncode == 0, verified.stdout + verified.stderr
    assert verified.stdout.startswith("VERIFIED: device runs edit 109")
    assert "using the build `stamp flash` put on " in verified.stderr
    assert "(build/app-109.stamp.json as it was then)" in verified.stderr

    state = find_state_dir(load_config(cwd=repo.path))
    remembered = json.loads((state / FILE_NAME).read_text())["devices"]
    assert list(remembered) == [device]
    assert remembered[device]["manifest"] == str(old.manifest_path.resolve())


def test_verify_falls_back_to_the_history_when_the_manifest_is_gone(
    repo: GitRepo, tmp_path: Path
) -> None:
    with old_build_flashed(repo, tmp_path) as flashed:
        state = find_state_dir(load_config(cwd=repo.path))
        devices = json.loads((state / FILE_NAME).read_text())["devices"]
        copy = Path(devices[flashed.device]["copy"])
        flashed.old.manifest_path.unlink()
        copy.unlink()  # an older stamp's record, or a state dir someone tidied
        verified = flashed.verify()
    assert "is gone; falling back to the build history" in verified.stderr
    assert "using the newest build in the history" in verified.stderr


def test_a_rebuild_after_the_flash_does_not_change_what_verify_expects(
    repo: GitRepo, tmp_path: Path
) -> None:
    """The next build rewrites the manifest at the flashed path: verify still expects the
    flashed build (found by a new user following the README, issue 11 item 9)."""
    with old_build_flashed(repo, tmp_path) as flashed:
        # `make` again: the same path now holds the manifest of edit 111.
        flashed.old.manifest_path.write_bytes(flashed.new.manifest_path.read_bytes())
        verified = flashed.verify()
    assert verified.returncode == 0, verified.stdout + verified.stderr
    assert verified.stdout.startswith("VERIFIED: device runs edit 109")
