"""`stamp flash` with a `flash_command`, on the example firmware (arm-none-eabi-gcc) running
in QEMU: the command "flashes" by booting a new QEMU with the new image on the same TCP
port, as `openocd … program … reset` would reset a real board into its new firmware."""

from __future__ import annotations

import os
import shlex
import signal
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

import pytest

from tests.support import qemu as qemu_support
from tests.support import run_stamp
from tests.support.qemu import Builds

pytestmark = [pytest.mark.qemu, pytest.mark.toolchain]

# Run as `python flash_qemu.py ELF socket://127.0.0.1:PORT STATE`; STATE holds the pid of
# the QEMU that is the board right now.
RESTARTING_FLASHER = """\
import os, signal, subprocess, sys, time
from pathlib import Path

elf, device, state = sys.argv[1], sys.argv[2], Path(sys.argv[3])
port = int(device.rsplit(":", 1)[1])

def listening():
    local = f"0100007F:{port:04X}"
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        if fields[1] == local and fields[3] == "0A":
            return True
    return False

board = int(state.read_text())
print(f"flash: resetting the board (QEMU {board}) into {Path(elf).name}", flush=True)
os.kill(board, signal.SIGTERM)
deadline = time.monotonic() + 30
while listening():
    if time.monotonic() > deadline:
        sys.exit("flash: the old board did not stop")
    time.sleep(0.02)
qemu = subprocess.Popen(
    ["qemu-system-arm", "-M", "lm3s6965evb", "-display", "none", "-monitor", "none",
     "-nodefaults", "-serial", f"tcp:127.0.0.1:{port},server=on,wait=off", "-kernel", elf],
    stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    start_new_session=True,
)
state.write_text(str(qemu.pid))
while not listening():
    if qemu.poll() is not None or time.monotonic() > deadline:
        sys.exit("flash: the board did not come back")
    time.sleep(0.02)
print("flash: done", flush=True)
"""

# A flash command with a bug: it says it flashed, and the old image keeps running.
FORGETFUL_FLASHER = """\
import sys
print(f"flash: writing {sys.argv[1]} ... done", flush=True)
"""


@pytest.fixture(scope="module")
def builds(tmp_path_factory: pytest.TempPathFactory) -> Builds:
    return qemu_support.build_twice(tmp_path_factory, "flash-qemu")


@contextmanager
def board(elf: Path, state: Path) -> Iterator[qemu_support.Qemu]:
    """QEMU running `elf` on a TCP port; `state` holds the pid of whichever QEMU is the
    board (a flash command replaces it), and that one is stopped at the end too."""
    with qemu_support.boot_qemu(elf, serial="tcp") as qemu:
        state.write_text(str(qemu.process.pid))
        try:
            yield qemu
        finally:
            pid = int(state.read_text())
            if pid != qemu.process.pid:
                with suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
                while Path(f"/proc/{pid}").exists() and not _zombie(pid):
                    time.sleep(0.01)


def _zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except FileNotFoundError:
        return False


def configure(builds: Builds, qemu: qemu_support.Qemu, script: Path, state: Path) -> None:
    command = shlex.join([sys.executable, str(script), "{elf}", "{device}", str(state)])
    (builds.project / "stamp.toml").write_text(
        f'[devices.board]\nserial = "{qemu.port}"\nflash_command = {_toml(command)}\n'
    )


def _toml(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def test_a_flash_command_that_resets_into_the_new_image_is_verified(
    builds: Builds, tmp_path: Path
) -> None:
    script = tmp_path / "flash_qemu.py"
    script.write_text(RESTARTING_FLASHER)
    state = tmp_path / "board.pid"
    with board(builds.old.elf, state) as qemu:
        configure(builds, qemu, script, state)
        done = run_stamp(
            "flash", "--device", "board", "--timeout", "60", str(builds.new.elf), cwd=builds.project
        )
        assert int(state.read_text()) != qemu.process.pid  # the board was replaced
    assert done.returncode == 0, done.stderr
    new = builds.new_manifest.identity
    assert new.build_id is not None
    assert done.stdout == (
        f"VERIFIED: device runs edit {new.edit} "
        f"(git {builds.new.git[:8]}, build-id {new.build_id[:8]}…)\n"
    )
    assert "stamp: attempt 1/3: flashing " in done.stderr
    assert f"  flash: resetting the board (QEMU {qemu.process.pid}) into firmware.elf\n" in (
        done.stderr
    )
    assert "  flash: done\n" in done.stderr
    assert "retrying" not in done.stderr


def test_a_flash_command_that_leaves_the_old_image_running_is_caught(
    builds: Builds, tmp_path: Path
) -> None:
    script = tmp_path / "flash_forgetful.py"
    script.write_text(FORGETFUL_FLASHER)
    state = tmp_path / "board.pid"
    with board(builds.old.elf, state) as qemu:
        configure(builds, qemu, script, state)
        done = run_stamp(
            "flash",
            "--device",
            "board",
            "--retries",
            "1",
            "--timeout",
            "60",
            str(builds.new.elf),
            cwd=builds.project,
        )
    assert done.returncode == 1, done.stderr
    old, new = builds.old_manifest.identity, builds.new_manifest.identity
    first = done.stdout.splitlines()[0]
    assert first.startswith(f"MISMATCH: device runs edit {old.edit} (git {builds.old.git[:8]}, ")
    assert first.endswith(f"; expected edit {new.edit}")
    assert done.stderr.count(f"  flash: writing {builds.new.elf} ... done\n") == 2
    assert "stamp: attempt 1/2: MISMATCH: device runs edit " in done.stderr
    assert "stamp: attempt 2/2: flashing again (the last attempt)" in done.stderr
