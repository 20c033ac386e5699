"""The example firmware, built with arm-none-eabi-gcc and run in QEMU, heard by stamp.

What the device reports is checked against GNU readelf's view of the same ELF, so the
C template, the linker script, the transport and the extractor are all tested against
a reference that is not stamp.
"""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import pytest

from stamp.cli.heard_words import heard_text
from stamp.device.transport.base import Heard, HeardKind
from stamp.device.transport.serial import SerialTransport
from stamp.record import find_records
from tests.support import EXAMPLE
from tests.support import qemu as qemu_support
from tests.support.qemu import Firmware

pytestmark = [pytest.mark.toolchain, pytest.mark.qemu]

DEADLINE = 60.0
"""Seconds to wait for QEMU's report: generous for a loaded 2-core machine."""
BANNER = "boot: stamp example for the LM3S6965 (Cortex-M3)"


@pytest.fixture(scope="session")
def firmware(tmp_path_factory: pytest.TempPathFactory) -> Firmware:
    return qemu_support.example_firmware(tmp_path_factory)


@pytest.fixture(scope="session")
def expected(firmware: Firmware) -> dict[str, Any]:
    """The identity GNU readelf sees in the ELF."""
    return qemu_support.readelf_identity(firmware.elf)


def until_report(transport: SerialTransport) -> list[Heard]:
    heard: list[Heard] = []
    for item in transport.listen(time.monotonic() + DEADLINE):
        heard.append(item)
        if item.kind is HeardKind.REPORT:
            return heard
    raise AssertionError(f"no report from QEMU; heard {[heard_text(h) for h in heard]}")


def texts(heard: list[Heard]) -> list[str]:
    """What the firmware printed: the lines and reports, without the transport's status."""
    return [heard_text(h) for h in heard if h.kind is not HeardKind.STATUS]


def reported(heard: list[Heard]) -> dict[str, Any]:
    report = heard[-1].report
    assert report is not None
    return report.identity.known()


def test_the_build_carries_its_identity(firmware: Firmware, expected: dict[str, Any]) -> None:
    assert expected["git"] == firmware.git
    assert expected["dirty"] is False
    assert expected["edit"] >= 1
    assert len(expected["build_id"]) == 40
    manifest = json.loads(firmware.manifest.read_text())
    assert {key: manifest[key] for key in expected} == expected
    # The raw image carries the same record (objcopy -O binary keeps .stamp).
    [(_, record)] = find_records(firmware.bin.read_bytes())
    assert (record.edit, record.git, record.dirty) == (
        expected["edit"],
        expected["git"],
        expected["dirty"],
    )


def test_reports_its_identity_at_boot(firmware: Firmware, expected: dict[str, Any]) -> None:
    heard: list[Heard] = []
    reset_at: int | None = None
    with (
        qemu_support.boot_qemu(firmware.elf, serial="tcp", paused=True) as qemu,
        SerialTransport(qemu.port) as transport,
    ):
        for item in transport.listen(time.monotonic() + DEADLINE):
            heard.append(item)
            if item.kind is HeardKind.STATUS and "opened" in heard_text(item):
                qemu.resume()  # power on only now that someone listens
            elif item.kind is HeardKind.REPORT and reset_at is None:
                qemu.reset()  # and reboot: it reports again
                reset_at = len(heard)
            elif item.kind is HeardKind.REPORT and BANNER in texts(heard[reset_at:]):
                break
    assert reset_at is not None
    assert all(h.report.identity.known() == expected for h in heard if h.report is not None)
    first_boot = texts(heard[:reset_at])
    assert first_boot[:2] == [BANNER, "boot: uart0 at 115200 8N1, polled"]
    assert first_boot[2].startswith("@stamp {")
    second_boot = texts(heard[reset_at:])
    at = second_boot.index(BANNER)
    assert second_boot[at + 1] == "boot: uart0 at 115200 8N1, polled"
    assert second_boot[at + 2].startswith("@stamp {")


def test_answers_a_query_after_its_boot_line(firmware: Firmware, expected: dict[str, Any]) -> None:
    with qemu_support.boot_qemu(firmware.elf, serial="tcp", paused=True) as qemu:
        # A first client hears the boot report and hangs up: the firmware is past boot.
        host, port = qemu.port.removeprefix("socket://").split(":")
        with socket.create_connection((host, int(port)), timeout=DEADLINE) as first:
            qemu.resume()
            received = b""
            while b"@stamp " not in received or not received.endswith(b"\n"):
                chunk = first.recv(4096)
                assert chunk, f"QEMU closed the connection: {received!r}"
                received += chunk
        with SerialTransport(qemu.port) as transport:
            heard = until_report(transport)
    assert reported(heard) == expected
    assert BANNER not in [heard_text(h) for h in heard], "the report answers ?stamp, not a reboot"


def test_waits_for_a_port_that_appears_later(
    firmware: Firmware, expected: dict[str, Any], tmp_path: Path
) -> None:
    link = tmp_path / "ttyACM0"  # will point at QEMU's pty, as udev links a USB port
    heard: list[Heard] = []
    with ExitStack() as stack:
        transport = stack.enter_context(SerialTransport(str(link)))
        for item in transport.listen(time.monotonic() + DEADLINE):
            heard.append(item)
            if item.kind is HeardKind.REPORT:
                break
            if heard_text(item) == f"waiting for {link} to appear":
                time.sleep(1.0)  # listening, with nothing to open yet
                qemu = stack.enter_context(qemu_support.boot_qemu(firmware.elf, serial="pty"))
                link.symlink_to(qemu.port)
    assert [heard_text(h) for h in heard if h.kind is HeardKind.STATUS] == [
        f"waiting for {link} to appear",
        f"port {link} opened",
    ]
    assert reported(heard) == expected


@pytest.mark.parametrize("kind", ["elf", "bin"])
def test_the_simulator_reports_what_qemu_reports(
    firmware: Firmware, expected: dict[str, Any], tmp_path: Path, kind: str
) -> None:
    from stamp.sim.serial import SerialBoard, identity_from_image

    path = firmware.elf if kind == "elf" else firmware.bin
    with SerialBoard(identity_from_image(path.read_bytes())) as board:
        board.start()
        with SerialTransport(board.path) as transport:
            assert reported(until_report(transport)) == expected


@pytest.fixture
def project(tmp_path: Path) -> Iterator[Path]:
    qemu_support.copy_example(tmp_path / "project")
    yield tmp_path / "project"


def test_make_rebuilds_only_what_changed(project: Path) -> None:
    first = qemu_support.build_example(project)
    before = qemu_support.readelf_identity(first.elf)
    built_at = first.elf.stat().st_mtime_ns

    again = qemu_support.run_make(project)
    assert "arm-none-eabi-gcc" not in again.stdout, again.stdout
    assert first.elf.stat().st_mtime_ns == built_at

    main_c = project / "main.c"
    main_c.write_text(main_c.read_text() + "/* an edit */\n")
    second = qemu_support.build_example(project)
    after = qemu_support.readelf_identity(second.elf)
    assert after["edit"] == before["edit"] + 1
    assert after["dirty"] is True
    assert after["git"] == before["git"]
    assert after["build_id"] != before["build_id"]
    assert json.loads(second.manifest.read_text())["edit"] == after["edit"]


def test_make_works_in_the_repository(tmp_path: Path) -> None:
    """`make -C examples/cortex-m3` as a user runs it (outputs sent to a temp dir)."""
    done = qemu_support.run_make(EXAMPLE, build=tmp_path / "build", stamp_mk=None)
    identity = qemu_support.readelf_identity(tmp_path / "build" / "firmware.elf")
    assert identity["edit"] >= 1, done.stdout
    assert (tmp_path / "build" / "firmware.stamp.json").is_file()
