"""`stamp sim serial --firmware app.bin` boots like the ESP-IDF app in the image."""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from stamp.device.esp_boot import BootInfo, BootLogScanner
from stamp.device.transport.base import HeardKind
from stamp.device.transport.serial import SerialTransport
from stamp.sim.esp import esp_app
from tests.support import FIXTURES, spawn_stamp

ESP = FIXTURES / "esp"
DEADLINE = 30.0
BLINK_SHA = "3059e6b55a965865febd28fa9f6028ad5cd0dab311febb0a3ea79eaa223ac2b0"


@contextmanager
def sim(*args: str, cwd: Path) -> Iterator[str]:
    """`stamp sim serial ARGS` as a process; yields its pty path."""
    proc = spawn_stamp("sim", "serial", "--boot-delay", "0.5", *args, cwd=cwd)
    try:
        assert proc.stdout is not None
        first = proc.stdout.readline()
        assert first, proc.communicate(timeout=DEADLINE)[1]
        yield json.loads(first)["device"].removeprefix("serial:")
    finally:
        proc.terminate()
        proc.communicate(timeout=DEADLINE)


def boot_info(port: str) -> tuple[BootInfo, list[str]]:
    """The boot log's report, and every line heard up to it."""
    scanner = BootLogScanner()
    lines: list[str] = []
    with SerialTransport(port, query=False) as transport:
        for item in transport.listen(time.monotonic() + DEADLINE):
            if item.kind is HeardKind.LINE or item.kind is HeardKind.REPORT:
                lines.append(item.text)
                info = scanner.feed(item.text)
                if info is not None:
                    return info, lines
    raise AssertionError(f"no ELF hash line; heard {lines}")


@pytest.mark.parametrize(
    ("args", "digits", "ellipsis"),
    [
        ((), 16, True),
        (("--hash-len", "64", "--no-ellipsis"), 64, False),
        (("--hash-len", "8"), 8, True),
    ],
)
def test_boots_with_the_configured_hash_length(
    tmp_path: Path, args: tuple[str, ...], digits: int, ellipsis: bool
) -> None:
    firmware = ESP / "esp_idf_blink_esp32s2.bin"
    with sim("--firmware", str(firmware), *args, cwd=tmp_path) as port:
        info, lines = boot_info(port)
    assert info.identity.elf_sha256 == BLINK_SHA[:digits] and info.cut_short is ellipsis
    assert (
        info.identity.project_name == "blink"
        and info.identity.compile_time == "Sep 13 2022 19:46:07"
    )
    assert info.identity.app_version == "qa-test-v5.0-20220830-4-g4532e6"
    assert any("cpu_start: Application information:" in line for line in lines)
    assert not any(line.startswith("@stamp") for line in lines)


def test_newer_esp_idf_prints_app_init(tmp_path: Path) -> None:
    # esp32c6-appdesc's IDF version is a placeholder, not a release: treated as current.
    with sim("--firmware", str(ESP / "esp32c6-appdesc.bin"), cwd=tmp_path) as port:
        info, lines = boot_info(port)
    assert any("app_init: ELF file SHA256:" in line for line in lines)
    assert info.identity.elf_sha256 == "10eb99e6b6bc87b9" and not info.cut_short


def test_an_elf_boots_with_its_own_file_hash() -> None:
    path = ESP / "esp32-app-template.elf"
    app = esp_app(path.read_bytes(), path.name)
    assert app is not None
    assert app.elf_sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    assert app.desc.project_name == "app-template"


def test_the_reported_hash_can_be_overridden(tmp_path: Path) -> None:
    other = "f" + BLINK_SHA[1:]
    firmware = ESP / "esp_idf_blink_esp32s2.bin"
    with sim("--firmware", str(firmware), "--elf-sha256", other, cwd=tmp_path) as port:
        info, _ = boot_info(port)
    assert info.identity.elf_sha256 == other[:16]


def test_non_esp_firmware_is_not_an_esp_app() -> None:
    assert esp_app(b"\x00" * 64, "zeros.bin") is None
