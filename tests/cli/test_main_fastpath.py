"""The click-free fast path of `stamp header` behaves exactly like the click command."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from stamp.cli.entry import _parse_fast
from tests.support import GitRepo, git_env


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["header"], {}),
        (["header", "--json"], {"as_json": True}),
        (["-q", "header", "--strict"], {"quiet": True, "strict": True}),
        (["header", "--output-dir", "gen"], {"output_dir": Path("gen")}),
        (["header", "--output-dir=gen", "--json"], {"output_dir": Path("gen"), "as_json": True}),
        (["--config", "x.toml", "header"], {"config_path": Path("x.toml")}),
        (["--config=x.toml", "header"], {"config_path": Path("x.toml")}),
        (["header", "-q"], {"quiet": True}),
        (
            ["header", "--config", "x.toml", "--json"],
            {"config_path": Path("x.toml"), "as_json": True},
        ),
    ],
)
def test_fast_forms(argv: list[str], expected: dict[str, object]) -> None:
    defaults: dict[str, object] = {
        "config_path": None,
        "output_dir": None,
        "as_json": False,
        "strict": False,
        "quiet": False,
    }
    assert _parse_fast(argv) == {**defaults, **expected}


@pytest.mark.parametrize(
    "argv",
    [
        [],
        ["--help"],
        ["header", "--help"],
        ["-v", "header"],
        ["header", "--bogus"],
        ["header", "--output-dir"],
        ["manifest", "x.elf"],
        ["--config"],
        ["header", "extra"],
    ],
)
def test_everything_else_goes_to_click(argv: list[str]) -> None:
    assert _parse_fast(argv) is None


def _run(entry: str, args: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    env = git_env()
    env["NO_COLOR"] = "1"
    code = f"import sys; sys.argv[0] = 'stamp'; from {entry} import main; main()"
    return subprocess.run(
        [sys.executable, "-c", code, *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )


@pytest.mark.parametrize(
    "args",
    [
        ["header"],
        ["header", "--json"],
        ["-q", "header"],
        ["header", "--output-dir", "gen"],
        ["--config", "missing.toml", "header"],
        ["header", "-q"],
        ["header", "--config", "missing.toml"],
    ],
)
def test_same_behaviour_both_paths(repo: GitRepo, args: list[str]) -> None:
    fast = _run("stamp.cli.entry", args, repo.path)
    assert fast.returncode in (0, 2)
    slow = _run("stamp.cli.app", args, repo.path)  # a no-op now: compare the no-op outputs
    fast_again = _run("stamp.cli.entry", args, repo.path)
    assert (slow.returncode, slow.stdout, slow.stderr) == (
        fast_again.returncode,
        fast_again.stdout,
        fast_again.stderr,
    )


def test_fast_path_does_not_import_click_or_jinja(repo: GitRepo) -> None:
    env = git_env()
    subprocess.run([sys.executable, "-m", "stamp", "header"], cwd=repo.path, env=env, check=True)
    done = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "stamp", "header"],
        cwd=repo.path,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    imported = {line.split("|")[-1].strip() for line in done.stderr.splitlines()}
    assert "stamp.header.run" in imported
    heavy = {"click", "jinja2", "git", "elftools", "httpx", "serial", "logging", "dataclasses"}
    heavy |= {"sqlite3", "_sqlite3", "stamp.artifact.history"}  # only the edit recovery needs them
    assert not heavy & imported  # see bench/README.md: each is a visible share of the no-op
