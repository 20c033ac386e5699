"""`stamp verify/flash --device gdb:…` against the example firmware in QEMU, through its gdbstub.

QEMU's `-gdb tcp:127.0.0.1:PORT` stands in for a debug probe's GDB server (SPEC section 9):
the same remote protocol OpenOCD, pyOCD and J-Link speak.
"""

from __future__ import annotations

import hashlib
import json
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import serial

from stamp.artifact.manifest import load_manifest
from tests.support import qemu as qemu_support
from tests.support import require_tool, run_stamp
from tests.support.qemu import Builds, Firmware, Qemu

pytestmark = [pytest.mark.qemu, pytest.mark.toolchain]

BANNER = 'uart_puts("boot: uart0 at 115200 8N1, polled\\r\\n");'


@pytest.fixture(scope="module")
def builds(tmp_path_factory: pytest.TempPathFactory) -> Builds:
    return qemu_support.build_twice(tmp_path_factory, "gdb-qemu")


@pytest.fixture(scope="module")
def moved(tmp_path_factory: pytest.TempPathFactory) -> Firmware:
    """A build whose code is longer, so its stamp record sits at a higher address."""
    project = tmp_path_factory.mktemp("gdb-moved") / "example"
    repo = qemu_support.copy_example(project)
    main_c = project / "main.c"
    source = main_c.read_text()
    assert BANNER in source
    longer = BANNER + '\n    uart_puts("boot: a longer banner moves the record\\r\\n");'
    main_c.write_text(source.replace(BANNER, longer))
    repo.commit("a longer banner")
    return qemu_support.build_example(project)


def verify(qemu: Qemu, manifest: Path, *extra: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    args = ["verify", "--device", qemu.gdb_device, "--manifest", str(manifest)]
    return run_stamp(*args, "--timeout", "60", *extra, cwd=cwd)


def ask_report(qemu: Qemu) -> str:
    """Send `?stamp` on the firmware's UART and return the report line it prints."""
    with serial.serial_for_url(qemu.port, timeout=1) as port:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            port.write(b"?stamp\n")
            for _ in range(5):
                line = port.readline().decode(errors="replace")
                if line.startswith("@stamp "):
                    return line.strip()
    pytest.fail(f"the firmware did not answer ?stamp on {qemu.port}: it is not running")


def test_verified_and_the_firmware_keeps_running(builds: Builds) -> None:
    with qemu_support.boot_qemu(builds.new.elf, gdb=True) as qemu:
        done = verify(qemu, builds.new.manifest, cwd=builds.project)
        assert done.returncode == 0, done.stderr
        # Resumed after the read: the firmware still answers on its UART.
        report = json.loads(ask_report(qemu)[len("@stamp ") :])
    new = builds.new_manifest
    assert new.identity.build_id is not None
    assert done.stdout == (
        f"VERIFIED: device runs edit {new.identity.edit} "
        f"(git {builds.new.git[:8]}, build-id {new.identity.build_id[:8]}…)\n"
    )
    assert report["edit"] == new.identity.edit
    assert "while stamp read it, then resumed" in done.stderr
    assert new.memory is not None
    assert f"memory at 0x{new.memory.record.address:08x}"[:-4] in done.stderr.replace("_", "")


def test_a_newer_manifest_is_a_mismatch_naming_the_running_edit(builds: Builds) -> None:
    with qemu_support.boot_qemu(builds.old.elf, gdb=True) as qemu:
        done = verify(qemu, builds.new.manifest, "--json", cwd=builds.project)
    assert done.returncode == 1, done.stderr
    record = json.loads(done.stdout)
    old, new = builds.old_manifest, builds.new_manifest
    assert record["message"].startswith(f"MISMATCH: device runs edit {old.identity.edit} ")
    assert record["message"].endswith(f"; expected edit {new.identity.edit}")
    assert record["reported"]["build_id"] == old.identity.build_id
    assert {c["key"] for c in record["compared"] if not c["match"]} == {"edit", "git", "build_id"}


def test_image_readback_hash_is_sha256sum_of_objcopy(builds: Builds, tmp_path: Path) -> None:
    objcopy = require_tool("arm-none-eabi-objcopy")
    sha256sum = require_tool("sha256sum")
    raw = tmp_path / "objcopy.bin"
    subprocess.run([objcopy, "-O", "binary", str(builds.new.elf), str(raw)], check=True)
    reference = subprocess.run(
        [sha256sum, str(raw)], capture_output=True, text=True, check=True
    ).stdout.split()[0]
    with qemu_support.boot_qemu(builds.new.elf, gdb=True) as qemu:
        done = verify(qemu, builds.new.manifest, "--image", "--json", cwd=builds.project)
    assert done.returncode == 0, done.stderr
    record = json.loads(done.stdout)
    assert record["reported"]["image_sha256"] == reference
    compared = {c["key"]: c["match"] for c in record["compared"]}
    assert compared["image_sha256"] is True
    size = raw.stat().st_size
    assert f"read back {size} bytes of the image in " in done.stderr
    assert "progress: reading the image: " in done.stderr


def test_a_moved_record_names_the_build_in_flash(builds: Builds, moved: Firmware) -> None:
    old, expected = builds.old_manifest, load_manifest(moved.manifest)
    assert old.memory is not None and expected.memory is not None
    assert expected.memory.record.address != old.memory.record.address
    with qemu_support.boot_qemu(builds.old.elf, gdb=True) as qemu:
        done = verify(qemu, moved.manifest, cwd=moved.project)
    assert done.returncode == 1, done.stderr
    # Another checkout built it, so it is named by what the flash holds.
    assert done.stdout.startswith(
        f"MISMATCH: device runs a build not in this checkout's history "
        f"(edit {old.identity.edit}, git {builds.old.git[:8]}); "
    )
    at = f"{old.memory.record.address:08x}"
    assert (
        f"the flash holds edit {old.identity.edit} at 0x{at[:4]}_{at[4:]}: the layout changed"
        in (done.stderr)
    )


def test_flash_loads_a_new_elf_and_verify_reports_it(builds: Builds) -> None:
    with qemu_support.boot_qemu(builds.old.elf, gdb=True) as qemu:
        flashed = run_stamp(
            "flash",
            "--device",
            qemu.gdb_device,
            "--manifest",
            str(builds.new.manifest),
            "--timeout",
            "60",
            str(builds.new.elf),
            cwd=builds.project,
        )
        assert flashed.returncode == 0, flashed.stderr
        done = verify(qemu, builds.new.manifest, cwd=builds.project)
        running = json.loads(ask_report(qemu)[len("@stamp ") :])
    new = builds.new_manifest
    assert "stamp: loaded " in flashed.stderr
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith(f"VERIFIED: device runs edit {new.identity.edit} ")
    assert running["edit"] == new.identity.edit  # the new build booted and prints it


def test_a_server_that_is_gone_is_exit_3_within_the_timeout(builds: Builds) -> None:
    with qemu_support.boot_qemu(builds.new.elf, gdb=True) as qemu:
        device = qemu.gdb_device
    args = ["verify", "--device", device, "--manifest", str(builds.new.manifest)]
    done = run_stamp(*args, "--timeout", "5", "--json", cwd=builds.project)
    assert done.returncode == 3, done.stderr
    record = json.loads(done.stdout)
    assert record["elapsed"] <= 5
    assert "connection refused" in record["unreachable"]
    assert "openocd -f interface/" in record["unreachable"]


def test_a_server_that_stops_answering_is_exit_3_at_the_timeout(builds: Builds) -> None:
    with qemu_support.boot_qemu(builds.new.elf, gdb=True) as qemu:
        qemu.process.send_signal(signal.SIGSTOP)  # the kernel still accepts the connection
        try:
            done = verify_timeout(qemu, builds, "2")
        finally:
            qemu.process.send_signal(signal.SIGCONT)
    assert done.returncode == 3, done.stderr
    record = json.loads(done.stdout)
    assert record["elapsed"] <= 2 + 1  # the deadline, plus the process's own slack
    assert "did not answer" in record["unreachable"]


def verify_timeout(qemu: Qemu, builds: Builds, timeout: str) -> subprocess.CompletedProcess[str]:
    args = ["verify", "--device", qemu.gdb_device, "--manifest", str(builds.new.manifest)]
    return run_stamp(*args, "--timeout", timeout, "--json", cwd=builds.project)


# --- bad input: one clear line each -----------------------------------------------------------


def one_line_error(done: subprocess.CompletedProcess[str]) -> str:
    assert "Traceback" not in done.stderr
    lines = [line for line in done.stderr.splitlines() if line.startswith("stamp: error")]
    progress = [line for line in done.stderr.splitlines() if not line.startswith("stamp: ")]
    assert len(lines) == 1 and not progress, done.stderr
    return lines[0]


def rewritten(manifest: Path, tmp_path: Path, change: dict[str, object]) -> Path:
    record = json.loads(manifest.read_text())
    record.update(change)
    out = tmp_path / "changed.stamp.json"
    out.write_text(json.dumps(record))
    return out


def test_a_manifest_without_addresses(builds: Builds, tmp_path: Path) -> None:
    old_style = rewritten(builds.new.manifest, tmp_path, {})
    record = json.loads(old_style.read_text())
    del record["memory"]
    old_style.write_text(json.dumps(record))
    done = run_stamp(
        "verify", "--device", "gdb:127.0.0.1:1", "--manifest", str(old_style), cwd=tmp_path
    )
    assert done.returncode == 2
    assert "the manifest records no memory addresses" in one_line_error(done)


def test_an_address_outside_the_targets_memory(builds: Builds, tmp_path: Path) -> None:
    record = json.loads(builds.new.manifest.read_text())
    record["memory"]["record"]["address"] = 0x7000_0000
    wild = rewritten(builds.new.manifest, tmp_path, {"memory": record["memory"]})
    with qemu_support.boot_qemu(builds.new.elf, gdb=True) as qemu:
        done = verify(qemu, wild, cwd=builds.project)
        still = ask_report(qemu)  # resumed although the read failed
    assert done.returncode == 2, done.stderr
    line = one_line_error(done)
    assert "cannot read 128 bytes at 0x70000000" in line
    assert "outside this target's memory" in line
    assert still.startswith("@stamp ")


@pytest.fixture
def garbage_server() -> Iterator[int]:
    """A loopback TCP server that answers like a web server, not a GDB server."""
    server = socket.create_server(("127.0.0.1", 0))
    stop = threading.Event()

    def serve() -> None:
        server.settimeout(0.2)
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except TimeoutError:
                continue
            with conn:
                conn.recv(1024)
                conn.sendall(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")
                time.sleep(0.5)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield server.getsockname()[1]
    finally:
        stop.set()
        thread.join()
        server.close()


def test_a_server_that_answers_garbage(builds: Builds, garbage_server: int) -> None:
    device = f"gdb:127.0.0.1:{garbage_server}"
    args = ["verify", "--device", device, "--manifest", str(builds.new.manifest)]
    done = run_stamp(*args, "--timeout", "10", cwd=builds.project)
    assert done.returncode == 3, done.stderr
    assert "Traceback" not in done.stderr
    assert done.stdout.count("\n") == 1
    assert "'HTTP/1.1 400 Bad Request" in done.stdout
    assert "is not the GDB remote protocol" in done.stdout


def test_the_manifest_records_where_readelf_puts_the_record(builds: Builds) -> None:
    readelf = require_tool("arm-none-eabi-readelf")
    sections = subprocess.run(
        [readelf, "-S", "-W", str(builds.new.elf)], capture_output=True, text=True, check=True
    ).stdout
    # "  [ 1] .stamp  PROGBITS  00000530 001530 000080 ...": name, type, address.
    rows = [line.split("]", 1)[1].split() for line in sections.splitlines() if "] ." in line]
    addresses = {fields[0]: int(fields[2], 16) for fields in rows}
    memory = builds.new_manifest.memory
    assert memory is not None and memory.build_id_note is not None
    assert memory.record.address == addresses[".stamp"]
    assert memory.build_id_note.address == addresses[".note.gnu.build-id"]
    data = builds.new.bin.read_bytes()
    assert hashlib.sha256(data).hexdigest() == builds.new_manifest.identity.image_sha256


def test_make_flash_verify_with_a_configured_probe(builds: Builds) -> None:
    """`make flash-verify DEVICE=probe` with `[devices.probe] gdb = …`: nothing else runs."""
    config = builds.project / "stamp.toml"
    with qemu_support.boot_qemu(builds.old.elf, gdb=True) as qemu:
        config.write_text(f'[devices.probe]\ngdb = "127.0.0.1:{qemu.gdb_port}"\n')
        try:
            done = qemu_support.run_make(
                builds.project, "flash-verify", build=builds.new.elf.parent, extra=["DEVICE=probe"]
            )
        finally:
            config.unlink()
        running = json.loads(ask_report(qemu)[len("@stamp ") :])
    assert f"VERIFIED: device runs edit {builds.new_manifest.identity.edit} " in done.stdout
    assert running["edit"] == builds.new_manifest.identity.edit


def test_a_flash_command_loads_with_gdb_itself(builds: Builds) -> None:
    """A probe device's flash_command runs instead of stamp's loader: here GDB's own `load`."""
    gdb = require_tool("gdb-multiarch")
    config = builds.project / "stamp.toml"
    with qemu_support.boot_qemu(builds.old.elf, gdb=True) as qemu:
        remote = f"target remote 127.0.0.1:{qemu.gdb_port}"
        command = (
            f"{gdb} -nx -batch -ex 'set confirm off' -ex '{remote}' -ex load "
            "-ex 'monitor system_reset' -ex detach {elf}"
        )
        config.write_text(
            f'[devices.probe]\ngdb = "127.0.0.1:{qemu.gdb_port}"\nflash_command = "{command}"\n'
        )
        try:
            done = run_stamp(
                "flash",
                "--device",
                "probe",
                "--manifest",
                str(builds.new.manifest),
                str(builds.new.elf),
                cwd=builds.project,
            )
        finally:
            config.unlink()
    assert done.returncode == 0, done.stderr
    assert "with `" in done.stderr and "gdb-multiarch" in done.stderr
    assert done.stdout.startswith(
        f"VERIFIED: device runs edit {builds.new_manifest.identity.edit} "
    )
