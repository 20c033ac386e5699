"""What `stamp manifest` pays for on every build: the modules it imports and the git
processes it starts (bench/README.md, "Before and after the re-layout"). A real ELF built
by arm-none-eabi-gcc, recorded in a real git checkout by a fresh interpreter."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from stamp.record import StampRecord
from tests.support import GitRepo, git_env
from tests.support.elf import build_elf

HEAVY = {
    "imgtool": "MCUboot's signing tool, and with it cryptography (~75 ms)",
    "cryptography": "imgtool's",
    "jsonschema": "the manifest schema is plain code",
    "git": "GitPython: `stamp manifest` asks plain git through stamp.proc",
    "jinja2": "rendering belongs to `stamp header`",
    "httpx": "the cloud transport",
    "aiohttp": "the cloud simulator",
    "serial": "the serial transport",
    "smpclient": "the SMP transport",
    "esptool": "only an ESP-IDF image needs it",
    "stamp.device": "the verdict and flash code (stamp.cli.verdict_words imported it)",
    "stamp.cli.verdict_words": "the verdict's words: `stamp manifest` says its own",
    "stamp.artifact.mcuboot": "an ELF is never an MCUboot image",
    "tempfile": "atomic writes name their own temp file (tempfile brings random and shutil)",
}


def _stamp(repo: GitRepo, *args: str) -> subprocess.CompletedProcess[str]:
    env = git_env()
    env["NO_COLOR"] = "1"
    return subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "stamp", *args],
        cwd=repo.path,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )


@pytest.fixture
def elf(repo: GitRepo) -> Path:
    return build_elf(repo.path / "build", StampRecord(edit=3, git=repo.head, dirty=False))


def _imported(stderr: str) -> set[str]:
    return {line.split("|")[-1].strip() for line in stderr.splitlines() if "|" in line}


@pytest.mark.toolchain
def test_manifest_imports_nothing_it_does_not_need(repo: GitRepo, elf: Path) -> None:
    done = _stamp(repo, "manifest", str(elf))
    assert done.returncode == 0, done.stderr
    assert (repo.path / "build" / "app.stamp.json").is_file()
    imported = _imported(done.stderr)
    assert {"stamp.artifact.recording", "stamp.artifact.history.db", "sqlite3"} <= imported
    found = {
        module: why
        for module, why in HEAVY.items()
        if any(name == module or name.startswith(module + ".") for name in imported)
    }
    assert found == {}


@pytest.mark.toolchain
def test_manifest_asks_git_once(repo: GitRepo, elf: Path) -> None:
    """One rev-parse finds the state directory and checks that the record's commit is this
    repository's (issue 11's warning); it used to be four processes."""
    done = _stamp(repo, "-vv", "manifest", str(elf))
    assert done.returncode == 0, done.stderr
    gits = re.findall(r"DEBUG: run: (git .*) \(cwd=", done.stderr)
    assert gits == [f"git rev-parse --absolute-git-dir --verify --quiet '{repo.head}^{{commit}}'"]
    assert "not a commit of this repository" not in done.stderr
