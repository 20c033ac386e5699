"""ESP-IDF boot-log lines as devices and serial monitors really print them (table tests)."""

from __future__ import annotations

import pytest

from stamp.device.esp_boot import BootInfo, BootLogScanner, clean_line
from stamp.identity import Identity

SHA = "3059e6b55a965865febd28fa9f6028ad5cd0dab311febb0a3ea79eaa223ac2b0"

# (id, the line as received, the hash digits expected, printed with `...`)
HASH_LINES = [
    (
        "v4 cpu_start, 16 digits and ...",
        f"I (282) cpu_start: ELF file SHA256:  {SHA[:16]}...",
        16,
        True,
    ),
    ("v5.1 app_init, no ...", f"I (282) app_init: ELF file SHA256:  {SHA[:16]}", 16, False),
    ("all 64 digits", f"I (282) app_init: ELF file SHA256:  {SHA}", 64, False),
    ("v3 era, 8 digits and ...", f"I (282) cpu_start: ELF file SHA256:  {SHA[:8]}...", 8, True),
    ("9 digits", f"I (282) cpu_start: ELF file SHA256:  {SHA[:9]}...", 9, True),
    (
        "ANSI colours",
        f"\x1b[0;32mI (282) cpu_start: ELF file SHA256:  {SHA[:16]}...\x1b[0m",
        16,
        True,
    ),
    ("CRLF", f"I (282) app_init: ELF file SHA256:  {SHA[:32]}\r", 32, False),
    (
        "Arduino monitor timestamp",
        f"16:09:58.129 -> I (282) cpu_start: ELF file SHA256:  {SHA[:16]}...\r",
        16,
        True,
    ),
    (
        "esp-idf-monitor --timestamps, colours, CRLF",
        "2026-12-01 16:09:58.129 "
        f"\x1b[0;32mI (282) app_init: ELF file SHA256:  {SHA[:16]}\x1b[0m\r",
        16,
        False,
    ),
    ("upper-case digits", f"I (282) app_init: ELF file SHA256:  {SHA[:16].upper()}", 16, False),
    ("unicode ellipsis", f"I (282) cpu_start: ELF file SHA256:  {SHA[:16]}…", 16, True),
    ("trailing blanks", f"I (282) app_init: ELF file SHA256:  {SHA[:16]}   \r", 16, False),
]


@pytest.mark.parametrize(
    ("line", "digits", "ellipsis"),
    [case[1:] for case in HASH_LINES],
    ids=[case[0] for case in HASH_LINES],
)
def test_hash_line(line: str, digits: int, ellipsis: bool) -> None:
    info = BootLogScanner().feed(line.encode())
    assert info is not None
    assert info.identity.elf_sha256 == SHA[:digits]
    assert info.digits == digits
    assert info.cut_short is ellipsis


NOT_REPORTS = [
    "I (282) cpu_start: Pro cpu start user code",
    "I (282) boot: ELF file SHA256:  3059e6b55a965865",  # another tag
    "I (282) cpu_start: ELF file SHA256:  ",  # no digits
    "I (282) cpu_start: ELF file SHA256:  3059e6b5zz",  # not hex
    f"I (282) cpu_start: ELF file SHA256:  {SHA}00",  # more than 64
    "ELF file SHA256: 3059e6b55a965865",  # no tag
    '@stamp {"edit":1}',
    "",
]


@pytest.mark.parametrize("line", NOT_REPORTS)
def test_lines_that_are_not_a_hash(line: str) -> None:
    assert BootLogScanner().feed(line) is None


def test_a_whole_boot_gives_one_report_with_the_app_description() -> None:
    green, off = "\x1b[0;32m", "\x1b[0m\r\n"
    text = [
        "ESP-ROM:esp32s2-rc4-20191025\r\n",
        f"{green}I (24) boot: ESP-IDF v5.0 2nd stage bootloader{off}",
        f"{green}I (121) cpu_start: Application information:{off}",
        f"{green}I (124) cpu_start: Project name:     blink{off}",
        f"{green}I (129) cpu_start: App version:      qa-test-v5.0-20220830-4-g4532e6{off}",
        f"{green}I (135) cpu_start: Compile time:     Sep 13 2022 19:46:07{off}",
        f"{green}I (141) cpu_start: ELF file SHA256:  {SHA[:16]}...{off}",
        f"{green}I (147) cpu_start: ESP-IDF:          v5.0-beta1-427-g4532e6e0b2-dirt{off}",
    ]
    lines = [line.encode() for line in text]
    scanner = BootLogScanner()
    found = [info for line in lines if (info := scanner.feed(line)) is not None]
    assert found == [
        BootInfo(
            Identity(
                elf_sha256=SHA[:16],
                project_name="blink",
                app_version="qa-test-v5.0-20220830-4-g4532e6",
                compile_time="Sep 13 2022 19:46:07",
            ),
            cut_short=True,
        )
    ]
    assert found[0].identity.known() == {
        "elf_sha256": SHA[:16],
        "project_name": "blink",
        "app_version": "qa-test-v5.0-20220830-4-g4532e6",
        "compile_time": "Sep 13 2022 19:46:07",
    }


def test_a_reset_between_lines_does_not_mix_two_boots() -> None:
    scanner = BootLogScanner()
    scanner.feed("I (124) app_init: Project name:     old")
    scanner.feed("I (129) app_init: App version:      1.0")
    scanner.feed("I (124) app_init: Project name:     new")
    info = scanner.feed(f"I (141) app_init: ELF file SHA256:  {SHA[:16]}")
    assert info is not None
    assert info.identity.project_name == "new" and info.identity.app_version is None


def test_app_version_with_spaces_and_odd_text_is_kept() -> None:
    scanner = BootLogScanner()
    scanner.feed("I (129) app_init: App version:      my app 1.2 (rc) :-)")
    info = scanner.feed(f"I (141) app_init: ELF file SHA256:  {SHA[:16]}")
    assert info is not None and info.identity.app_version == "my app 1.2 (rc) :-)"


def test_clean_line() -> None:
    assert clean_line(b"\x1b[0;31mE (1) x: y\x1b[0m\r") == "E (1) x: y"
    assert clean_line(b"\xff\xfeabc\x1b") == "\ufffd\ufffdabc"
