"""Ctrl-C at any instant: exit 130, one line, no traceback, no child left behind (issue 10).

Each command is started as the installed `stamp` console script and sent SIGINT at a
random instant 0-200 ms after it was started. The interpreter's own startup (site, the
console script's wrapper) runs before any stamp code can, so the child starts with SIGINT
blocked and stamp.cli.entry unblocks it once its handler is in place: a signal sent
earlier waits for stamp instead of hitting Python's startup. `stamp flash` runs a flash
command that starts a helper of its own; both must be gone once stamp has exited.
"""

from __future__ import annotations

import os
import random
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support import git_env, make_repo
from tests.support.verify import make_build

STAMP = Path(sys.executable).parent / "stamp"
INSTANTS = 4
"""Random instants tried per command."""

FLASH_CHILD = """\
import os, subprocess, sys, time
helper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
with open(sys.argv[1], "a") as fp:
    fp.write(f"{os.getpid()}\\n{helper.pid}\\n")
time.sleep(120)
"""


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A loopback TCP port that accepts connections and never says anything."""
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(8)
        yield server.getsockname()[1]


def _start(args: list[str], cwd: Path) -> subprocess.Popen[str]:
    """The stamp console script, started with SIGINT blocked (the mask survives exec)."""
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    try:
        return subprocess.Popen(
            [str(STAMP), *args],
            cwd=cwd,
            env={**git_env(), "NO_COLOR": "1"},
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
    finally:
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def _interrupt(args: list[str], cwd: Path, delay: float) -> tuple[int, str, str]:
    """Start stamp, SIGINT it `delay` s later; (exit code, stdout, stderr)."""
    proc = _start(args, cwd)
    try:
        time.sleep(delay)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    return proc.returncode, out, err


def _commands(tmp_path: Path, port: int) -> dict[str, tuple[list[str], Path]]:
    repo = make_repo(tmp_path / "repo", {"main.c": "int main(void) { return 0; }\n"})
    build = make_build(tmp_path / "build", 7, "a" * 40)
    child = tmp_path / "flash_child.py"
    child.write_text(FLASH_CHILD)
    (repo.path / "stamp.toml").write_text(
        "[devices.bench]\n"
        f'serial = "socket://127.0.0.1:{port}"\n'
        f'flash_command = "{sys.executable} {child} {tmp_path / "pids"} {{bin}}"\n'
    )
    device = f"serial:socket://127.0.0.1:{port}"
    manifest = str(build.manifest_path)
    return {
        "header": (["header"], repo.path),
        "manifest": (["manifest", str(build.image), "-o", str(tmp_path / "m.json")], repo.path),
        "inspect": (["inspect", str(build.image)], repo.path),
        "verify": (
            ["verify", "--device", device, "--manifest", manifest, "--timeout", "30"],
            repo.path,
        ),
        "flash": (["flash", "--device", "bench", "--retries", "0", str(build.image)], repo.path),
    }


LONG_RUNNING = {"verify", "flash"}
"""Commands that cannot have finished before the signal (they wait 30 s and more)."""


@pytest.mark.parametrize("command", ["header", "manifest", "inspect", "verify", "flash"])
def test_interrupt_at_random_instants(tmp_path: Path, silent_port: int, command: str) -> None:
    args, cwd = _commands(tmp_path, silent_port)[command]
    rng = random.Random(f"{command}-{os.getpid()}")
    delays = [0.0, *(rng.uniform(0, 0.2) for _ in range(INSTANTS - 1))]
    interrupted = 0
    for delay in delays:
        code, out, err = _interrupt(args, cwd, delay)
        assert "Traceback" not in out + err, (command, delay, err)
        assert "KeyboardInterrupt" not in out + err, (command, delay, err)
        if code == 0 and command not in LONG_RUNNING:
            continue  # its work was done before the signal: its own exit code stands
        assert code == 130, (command, delay, code, err)
        assert err.rstrip().endswith("stamp: interrupted"), (command, delay, err)
        interrupted += 1
    assert interrupted > 0, f"{command} always finished before the interrupt"
    pids = tmp_path / "pids"
    if pids.exists():
        left = [int(p) for p in pids.read_text().split()]
        for _ in range(100):  # the helper's group got SIGTERM: give it a moment to go
            left = [pid for pid in left if _alive(pid)]
            if not left:
                break
            time.sleep(0.05)
        assert not left, f"children left running after stamp {command}: {left}"


def test_flash_child_stopped_with_its_helpers(tmp_path: Path, silent_port: int) -> None:
    """SIGINT to stamp alone once its flash command runs: the command and its helper go."""
    args, cwd = _commands(tmp_path, silent_port)["flash"]
    pids = tmp_path / "pids"
    proc = _start(args, cwd)
    try:
        while not (pids.exists() and len(pids.read_text().split()) == 2):
            assert proc.poll() is None, proc.communicate()
            time.sleep(0.01)
        os.kill(proc.pid, signal.SIGINT)  # stamp alone, not its process group
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 130, err
    assert "Traceback" not in out + err
    child, helper = (int(p) for p in pids.read_text().split())
    for _ in range(100):
        if not (_alive(child) or _alive(helper)):
            break
        time.sleep(0.05)
    assert not _alive(child), "the flash command was left running"
    assert not _alive(helper), "the flash command's helper was left running"
