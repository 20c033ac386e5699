"""The example firmware, built with the real toolchain and booted in real QEMU, for tests.

    from tests.support import qemu as qemu_support

    @pytest.fixture(scope="session")
    def firmware(tmp_path_factory):
        return qemu_support.example_firmware(tmp_path_factory)   # built once per session

    def test_it(firmware):
        with qemu_support.boot_qemu(firmware.elf) as qemu:      # serial="pty" | "tcp"
            ...  # qemu.port for pyserial / SerialTransport, qemu.device for --device
            qemu.reset()                                        # the firmware boots again

`boot_qemu` always kills QEMU, whatever happens inside the block. Builds happen in a copy
of examples/cortex-m3 that is its own git repository (`copy_example`), so the firmware's
git identity is known (`Firmware.git`) and the stamp checkout's own state is never touched.
"""

from __future__ import annotations

import json
import re
import socket
import struct
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import pytest

from stamp.artifact.manifest import Manifest, load_manifest
from tests.support import EXAMPLE, REPO_ROOT, GitRepo, git_env, make_repo, require_tool

QEMU = "qemu-system-arm"
MACHINE = "lm3s6965evb"
EXAMPLE_SOURCES = ("Makefile", "lm3s6965.ld", "startup.c", "main.c", "README.md")
STAMP_MK = REPO_ROOT / "hooks" / "stamp.mk"
STAMP_COMMAND = f"{sys.executable} -m stamp"
"""How the example's Makefile runs stamp in tests: this interpreter, this checkout."""

BUILD_TIMEOUT = 300.0
START_TIMEOUT = 60.0
"""Seconds QEMU may take to open its serial port (generous: a loaded 2-core CI runner)."""

_PTY_LINE = re.compile(r"char device redirected to (/dev/pts/\d+) \(label serial0\)")


@dataclass(frozen=True)
class Firmware:
    """One build of the example firmware."""

    project: Path
    """The git repository it was built from (a copy of examples/cortex-m3)."""
    git: str
    """That repository's HEAD at build time."""
    elf: Path
    """firmware.elf"""
    bin: Path
    """firmware.bin (objcopy -O binary)"""
    manifest: Path
    """firmware.stamp.json, written by `stamp manifest` in the Makefile."""
    make_output: str
    """What make printed (stdout and stderr), for assertions and failure messages."""


def copy_example(dest: Path) -> GitRepo:
    """A new git repository at `dest` holding the example's sources, committed."""
    files = {name: (EXAMPLE / name).read_text() for name in EXAMPLE_SOURCES}
    files[".gitignore"] = "build/\n"
    return make_repo(dest, files)


def run_make(
    project: Path,
    *targets: str,
    build: Path | None = None,
    stamp_mk: Path | None = STAMP_MK,
    extra: Sequence[str] = (),
) -> subprocess.CompletedProcess[str]:
    """`make -C project` with this checkout's stamp; fails the test if make fails.

    `stamp_mk` None leaves the Makefile's own include path (../../hooks/stamp.mk).
    """
    require_tool("make")
    require_tool("arm-none-eabi-gcc")
    args = [
        "make",
        "-C",
        str(project),
        f"STAMP={STAMP_COMMAND}",
        *([f"STAMP_MK={stamp_mk}"] if stamp_mk is not None else []),
        *([f"BUILD={build}"] if build is not None else []),
        *extra,
        *targets,
    ]
    env = {**git_env(), "NO_COLOR": "1"}
    done = subprocess.run(
        args,
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=BUILD_TIMEOUT,
        check=False,
    )
    if done.returncode != 0:
        pytest.fail(f"{' '.join(args)} failed ({done.returncode}):\n{done.stdout}{done.stderr}")
    return done


def build_example(project: Path, build: Path | None = None) -> Firmware:
    """Build the example in `project` (from `copy_example`) into `build` (default project/build)."""
    out = build if build is not None else project / "build"
    done = run_make(project, build=build)
    return Firmware(
        project=project,
        git=GitRepo(project).head,
        elf=out / "firmware.elf",
        bin=out / "firmware.bin",
        manifest=out / "firmware.stamp.json",
        make_output=done.stdout + done.stderr,
    )


_session_firmware: Firmware | None = None


def example_firmware(tmp_path_factory: pytest.TempPathFactory) -> Firmware:
    """The example built once per test session (call it from a session-scoped fixture)."""
    global _session_firmware
    if _session_firmware is None:
        project = tmp_path_factory.mktemp("cortex-m3")
        copy_example(project)
        _session_firmware = build_example(project)
    return _session_firmware


@dataclass(frozen=True)
class Builds:
    """Two builds of the example in one checkout: `old`, then a source change, `new`."""

    old: Firmware
    new: Firmware
    old_manifest: Manifest
    new_manifest: Manifest

    @property
    def project(self) -> Path:
        return self.new.project


def build_twice(tmp_path_factory: pytest.TempPathFactory, label: str) -> Builds:
    """Build the example, change main.c and commit, build again (a newer edit)."""
    project = tmp_path_factory.mktemp(label) / "example"
    repo = copy_example(project)
    old = build_example(project, build=project / "build-old")
    main_c = project / "main.c"
    main_c.write_text(main_c.read_text() + "\n/* a change: the next build is a new edit */\n")
    repo.commit("a change")
    new = build_example(project, build=project / "build-new")
    return Builds(old, new, load_manifest(old.manifest), load_manifest(new.manifest))


def readelf_identity(elf: Path) -> dict[str, Any]:
    """The record and build-id of `elf` as GNU readelf shows them (the reference reader)."""
    readelf = require_tool("arm-none-eabi-readelf")
    notes = subprocess.run(
        [readelf, "-n", str(elf)], capture_output=True, text=True, check=True
    ).stdout
    dump = subprocess.run(
        [readelf, "-x", ".stamp", str(elf)], capture_output=True, text=True, check=True
    ).stdout
    data = b"".join(
        bytes.fromhex("".join(match.group(1).split()))
        for match in re.finditer(r"^\s+0x[0-9a-f]+ ((?:[0-9a-f]{2,8} ){1,4})", dump, re.M)
    )
    # The record layout of stamp/record.py, decoded here by hand on purpose.
    assert data[:8] == b"STAMPREC", dump
    (edit,) = struct.unpack_from("<I", data, 12)
    dirty = data[16]
    identity: dict[str, Any] = {
        "edit": edit,
        "git": data[20:61].split(b"\0")[0].decode(),
    }
    if dirty != 0xFF:
        identity["dirty"] = bool(dirty)
    build_id = re.search(r"Build ID: ([0-9a-f]+)", notes)
    if build_id:
        identity["build_id"] = build_id.group(1)
    return identity


@dataclass(frozen=True)
class Qemu:
    """A running QEMU with the firmware's UART0 on a pty or a TCP socket."""

    port: str
    """The pyserial port: "/dev/pts/N" or "socket://127.0.0.1:P"."""
    process: subprocess.Popen[bytes]
    """The qemu-system-arm process."""
    log: Path
    """QEMU's own stdout and stderr (not the firmware's UART)."""
    qmp_socket: Path
    """QEMU's control socket (QMP), used by `qmp()`."""
    gdb_port: int = 0
    """The gdbstub's TCP port on 127.0.0.1 (boot_qemu(gdb=True)), else 0."""

    @property
    def gdb_device(self) -> str:
        """The `--device` URL of the gdbstub, e.g. "gdb:127.0.0.1:40123"."""
        assert self.gdb_port, "boot_qemu(gdb=True) first"
        return f"gdb:127.0.0.1:{self.gdb_port}"

    @property
    def device(self) -> str:
        """The `--device` URL for stamp, e.g. "serial:/dev/pts/3"."""
        return f"serial:{self.port}"

    def output(self) -> str:
        """What QEMU itself printed so far (for failure messages)."""
        return self.log.read_text(errors="replace")

    def resume(self) -> None:
        """Start the CPU of a QEMU booted with paused=True: the firmware boots now."""
        self.qmp("cont")

    def reset(self) -> None:
        """Press the reset button: the firmware boots again (and prints its report)."""
        self.qmp("system_reset")

    def qmp(self, command: str, **arguments: Any) -> Any:
        """Run one QMP command (https://www.qemu.org/docs/master/interop/qemu-qmp-ref.html)."""
        requests = [{"execute": "qmp_capabilities"}, {"execute": command, "arguments": arguments}]
        with socket.socket(socket.AF_UNIX) as sock:
            sock.settimeout(START_TIMEOUT)
            sock.connect(str(self.qmp_socket))
            with sock.makefile("rwb") as stream:
                reply: dict[str, Any] = json.loads(stream.readline())  # the greeting
                for request in requests:
                    stream.write(json.dumps(request).encode() + b"\n")
                    stream.flush()
                    reply = {}
                    while "return" not in reply:  # skip asynchronous events
                        line = stream.readline()
                        assert line, f"QEMU closed QMP during {request}:\n{self.output()}"
                        reply = json.loads(line)
                        assert "error" not in reply, f"QMP {request}: {reply['error']}"
        return reply["return"]


@contextmanager
def boot_qemu(
    elf: Path,
    *,
    serial: Literal["pty", "tcp"] = "pty",
    paused: bool = False,
    gdb: bool = False,
    start_timeout: float = START_TIMEOUT,
) -> Iterator[Qemu]:
    """Boot `elf` on QEMU's lm3s6965evb; yields once its serial port can be opened.

    serial="pty": UART0 on a new /dev/pts/N. Output while nobody has it open is lost
    (QEMU notices an opened pty within about a second), as with a USB serial port.
    serial="tcp": UART0 on socket://127.0.0.1:P (a free port); output while no client is
    connected is lost; a client that disconnects can connect again.
    paused=True: the CPU waits for `Qemu.resume()`, so a client that connects first hears
    the whole boot (prefer serial="tcp" then: QEMU sees a TCP client at once).
    gdb=True: QEMU's gdbstub listens on 127.0.0.1:`Qemu.gdb_port` (a debug probe's stand-in).
    QEMU is killed when the block exits, however it exits.
    """
    require_tool(QEMU)
    with tempfile.TemporaryDirectory(prefix="stamp-qemu-") as scratch:
        for attempt in range(3):
            log = Path(scratch) / f"qemu-{attempt}.log"
            qmp_socket = Path(scratch) / f"qmp-{attempt}.sock"
            tcp_port = _free_port() if serial == "tcp" else 0
            gdb_port = _free_port() if gdb else 0
            chardev = "pty" if serial == "pty" else f"tcp:127.0.0.1:{tcp_port},server=on,wait=off"
            # No display, monitor or default devices: the board, its UART0 and QMP.
            args = [QEMU, "-M", MACHINE, "-display", "none", "-monitor", "none", "-nodefaults"]
            args += ["-qmp", f"unix:{qmp_socket},server=on,wait=off"]
            args += ["-serial", chardev, "-kernel", str(elf), *(["-S"] if paused else [])]
            args += ["-gdb", f"tcp:127.0.0.1:{gdb_port}"] if gdb else []
            with log.open("wb") as log_file:
                process = subprocess.Popen(
                    args, stdin=subprocess.DEVNULL, stdout=log_file, stderr=subprocess.STDOUT
                )
            try:
                port = _wait_until_ready(process, log, serial, tcp_port, start_timeout)
                if port is not None and gdb and not _wait_listening(process, gdb_port):
                    port = None
                said = log.read_text(errors="replace")
                if port is None and attempt < 2 and "in use" in said:
                    continue  # another process took the free port first: try another
                if port is None:
                    pytest.fail(f"QEMU did not start ({' '.join(args)}):\n{said}")
                yield Qemu(
                    port=port, process=process, log=log, qmp_socket=qmp_socket, gdb_port=gdb_port
                )
                return
            finally:
                _kill(process)
    raise AssertionError("unreachable")


def _wait_until_ready(
    process: subprocess.Popen[bytes], log: Path, serial: str, tcp_port: int, timeout: float
) -> str | None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and process.poll() is None:
        if serial == "pty":
            found = _PTY_LINE.search(log.read_text(errors="replace"))
            if found:
                return found.group(1)
        elif _listening(tcp_port):
            return f"socket://127.0.0.1:{tcp_port}"
        time.sleep(0.05)
    return None


def _wait_listening(process: subprocess.Popen[bytes], port: int) -> bool:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline and process.poll() is None:
        if _listening(port):
            return True
        time.sleep(0.05)
    return False


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _listening(port: int) -> bool:
    """Something listens on 127.0.0.1:port; read from /proc, so QEMU sees no probe client."""
    listen_state = "0A"
    local = f"0100007F:{port:04X}"
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        if fields[1] == local and fields[3] == listen_state:
            return True
    return False


def _kill(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
