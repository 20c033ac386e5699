"""The README's commands work as shown (the parts a test can run without hardware)."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

from stamp.config import load_config
from tests.support import REPO_ROOT, GitRepo, run_stamp

README = (REPO_ROOT / "README.md").read_text()


def blocks(language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", README, flags=re.S)


def test_quick_start_is_exactly_two_commands() -> None:
    quick = README.split("## Quick start", 1)[1].split("\n## ", 1)[0]
    commands = [line.split("#")[0].strip() for line in blocks("sh")[0].splitlines()]
    assert commands == ["make demo", "make test"]
    assert "```sh\nmake demo" in quick


def test_header_walkthrough_output(repo: GitRepo) -> None:
    """The first console block, run in a fresh repository; SHAs differ, the rest not."""
    transcript = blocks("console")[0]
    short = repo.head[:8]
    for command, expected in re.findall(r"^\$ (.*)\n((?:(?!\$ ).*\n)*)", transcript, flags=re.M):
        *setup, stamp_command = command.split(" && ")
        for step in setup:  # e.g. echo '// change' >> main.c
            words = shlex.split(step)
            assert words[0] == "echo" and words[2] == ">>", step
            with (repo.path / words[3]).open("a") as fp:
                fp.write(words[1] + "\n")
        done = run_stamp(*shlex.split(stamp_command)[1:], cwd=repo.path)
        assert done.returncode == 0, done.stderr
        assert done.stdout == re.sub(r"\b[0-9a-f]{8}\b", short, expected)


def test_every_command_in_the_reference_exists() -> None:
    table = README.split("## Command reference", 1)[1].split("\n## ", 1)[0]
    rows = re.findall(r"^\| `stamp ([a-z ]+?)(?: [-\[A-Z].*?)?`", table, flags=re.M)
    assert len(rows) >= 9
    for row in rows:
        for name in row.split(" / ") if "/" in row else [row]:
            done = run_stamp(*name.split(), "--help", cwd=REPO_ROOT)
            assert done.returncode == 0, (name, done.stderr)


@pytest.mark.parametrize("option", ["--settle", "--manifest", "--retries", "--timeout"])
def test_flash_options_shown_exist(option: str) -> None:
    assert option in run_stamp("flash", "--help", cwd=REPO_ROOT).stdout


def test_configuration_example_is_valid(tmp_path: Path) -> None:
    section = README.split("## Configuration", 1)[1]
    toml = re.findall(r"```toml\n(.*?)```", section, flags=re.S)[0]
    config_file = tmp_path / "stamp.toml"
    config_file.write_text(toml)
    config = load_config(config_file)
    assert config.output_dir == "build/stamp" and set(config.devices) == {"bench", "garage"}
    assert config.devices["bench"].flash_command == "particle flash --usb {bin}"


def test_linker_lines_match_the_example_linker_script() -> None:
    script = (REPO_ROOT / "examples" / "cortex-m3" / "lm3s6965.ld").read_text()
    assert "KEEP(*(.stamp))" in script and "PROVIDE(__stamp_build_id = .)" in script
    assert "KEEP(*(.stamp))" in README and "PROVIDE(__stamp_build_id = .)" in README


def _shown_in(expected: list[str], actual: list[str]) -> None:
    """Every README line (but `...`) appears in the actual output, in order."""
    at = 0
    for line in expected:
        if line.strip() == "...":
            continue
        pieces = re.split(r"[0-9]+(?= bytes)", line)
        pattern = re.compile("[0-9]+".join(map(re.escape, pieces)) + "$")
        while at < len(actual) and not pattern.match(actual[at]):
            at += 1
        assert at < len(actual), f"README line not in the output: {line!r}\n{actual}"
        at += 1


def test_zephyr_mcuboot_howto(repo: GitRepo, tmp_path: Path) -> None:
    """The how-to's transcripts, run on an image the real imgtool signed."""
    from stamp.artifact.image import load_file
    from stamp.sim.smp import SmpBoard
    from stamp.sim.smp_server import SmpServer
    from stamp.sim.smp_slots import Slots
    from tests.support.mcuboot import app_body, keygen, sign

    howto = README.split("## Zephyr / MCUboot how-to", 1)[1].split("\n## ", 1)[0]
    inspect_block, flash_block = re.findall(r"```console\n(.*?)```", howto, flags=re.S)
    key = keygen(tmp_path, "ecdsa-p256")
    sign(repo.path, app_body(edit=41), "old.signed.bin", key=key, version="1.1.0")
    sign(repo.path, app_body(edit=42), "zephyr.signed.bin", key=key, version="1.2.0")
    for command, expected in re.findall(r"^\$ (.*)\n((?:(?!\$ ).*\n)*)", inspect_block, re.M):
        done = run_stamp(*shlex.split(command)[1:], cwd=repo.path)
        assert done.returncode == 0, done.stderr
        _shown_in(expected.splitlines(), done.stdout.splitlines())

    old = load_file(repo.path / "old.signed.bin").mcuboot
    assert old is not None
    with SmpBoard(SmpServer(Slots(old), reset_delay=0.2)) as board:
        board.start()
        for command, expected in re.findall(r"^\$ (.*)\n((?:(?!\$ ).*\n)*)", flash_block, re.M):
            command = command.replace("/dev/ttyACM0", board.path)
            done = run_stamp(*shlex.split(command)[1:], cwd=repo.path)
            assert done.returncode == 0, done.stderr
            lines = [line.replace("/dev/ttyACM0", board.path) for line in expected.splitlines()]
            _shown_in(lines, (done.stderr + done.stdout).splitlines())


@pytest.mark.parametrize("command", ["sim serial", "sim cloud"])
def test_reference_lists_every_sim_option(command: str) -> None:
    """The command reference shows every option `stamp sim X --help` offers (issue 11.10)."""
    table = README.split("## Command reference", 1)[1].split("\n## ", 1)[0]
    row = next(line for line in table.splitlines() if line.startswith(f"| `stamp {command} "))
    shown = set(re.findall(r"--[a-z-]+", row))
    helped = run_stamp(*command.split(), "--help", cwd=REPO_ROOT).stdout
    offered = set(re.findall(r"^\s+(?:-\w, )?(--[a-z-]+)", helped, flags=re.M))
    offered -= {"--config", "--verbose", "--quiet", "--help"}  # the global options
    offered = {o for o in offered if not o.startswith("--no-")}
    assert offered - shown == set()


def test_no_config_paths_are_relative_to_the_current_directory(tmp_path: Path) -> None:
    """What the Configuration section says about a project without config or git."""
    project = tmp_path / "plain"
    (project / "src").mkdir(parents=True)
    (project / "src" / "main.c").write_text("int main(void) { return 0; }\n")
    done = run_stamp("header", cwd=project)
    assert done.returncode == 0, done.stderr
    assert (project / "build" / "stamp" / "stamp.h").is_file()
    assert (project / ".stamp").is_dir()
    assert "relative to the current directory" in README and "in `.stamp/` beside" in README
