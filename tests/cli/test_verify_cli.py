"""`stamp verify` usage, config and manifest errors: exit 2, one sentence, no traceback."""

from __future__ import annotations

from pathlib import Path

import pytest

from stamp.cli.app import run
from tests.support import GitRepo, run_stamp
from tests.support.verify import GIT_NEW, make_build


@pytest.fixture(autouse=True)
def in_repo(repo: GitRepo, monkeypatch: pytest.MonkeyPatch) -> None:
    """In-process runs find config and history from the cwd: make it the test repo."""
    monkeypatch.chdir(repo.path)


def test_help_has_an_example_and_the_manifest_default() -> None:
    done = run_stamp("verify", "--help", cwd=Path.cwd())
    assert done.returncode == 0
    assert "stamp verify --device" in done.stdout
    assert "--json" in done.stdout
    assert "newest build in this checkout's build history" in " ".join(done.stdout.split())


def test_device_is_required(repo: GitRepo, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["verify"]) == 2
    assert "--device" in capsys.readouterr().err


def test_missing_manifest_is_exit_2(repo: GitRepo, capsys: pytest.CaptureFixture[str]) -> None:
    missing = repo.path / "build" / "app.stamp.json"
    code = run(["verify", "--device", "serial:/dev/null", "--manifest", str(missing)])
    err = capsys.readouterr().err
    assert code == 2
    assert "does not exist" in err and "stamp manifest" in err
    assert "Traceback" not in err


def test_corrupt_manifest_is_exit_2(repo: GitRepo, capsys: pytest.CaptureFixture[str]) -> None:
    bad = repo.write("app.stamp.json", '{"schema": 1, "edit": "eleven"}')
    assert run(["verify", "--device", "serial:/dev/null", "--manifest", str(bad)]) == 2
    assert "not a valid stamp manifest" in capsys.readouterr().err


def test_firmware_given_as_manifest_says_so(
    repo: GitRepo, capsys: pytest.CaptureFixture[str]
) -> None:
    elf = repo.path / "app.elf"
    elf.write_bytes(b"\x7fELF\x01\x01\x01" + bytes(range(128, 256)))
    assert run(["verify", "--device", "serial:/dev/null", "--manifest", str(elf)]) == 2
    err = capsys.readouterr().err
    assert f"{elf} is not a stamp manifest" in err and "NAME.stamp.json" in err
    assert "codec" not in err and err.count("\n") == 1


def test_no_manifest_and_empty_history_is_exit_2(repo: GitRepo) -> None:
    done = run_stamp("verify", "--device", "serial:/dev/null", cwd=repo.path)
    assert done.returncode == 2
    assert "build history is empty" in done.stderr
    assert "--manifest" in done.stderr
    assert done.stderr.count("\n") == 1


def test_bad_config_is_exit_2(repo: GitRepo, capsys: pytest.CaptureFixture[str]) -> None:
    build = make_build(repo.path / "build", 3, GIT_NEW)
    repo.write("stamp.toml", "[devices.bench]\nbaud = 9600\n")
    code = run(["verify", "--device", "bench", "--manifest", str(build.manifest_path)])
    assert code == 2
    assert "needs exactly one of `serial`, `particle`, `smp` or `gdb`" in capsys.readouterr().err


def test_negative_timeout_is_a_usage_error(repo: GitRepo) -> None:
    done = run_stamp("verify", "--device", "serial:/dev/null", "--timeout", "-1", cwd=repo.path)
    assert done.returncode == 2
    assert "--timeout" in done.stderr
