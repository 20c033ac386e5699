"""The boot log of an ESP-IDF app, for `stamp sim serial --firmware app.bin` (SPEC section 8).

The lines are those ESP-IDF prints (ROM loader, 2nd stage bootloader, then the app's
`cpu_start` lines, `app_init` since ESP-IDF 5.1), coloured as with CONFIG_LOG_COLORS, with
`\\r\\n` endings; the ELF hash is cut to `hash_len` digits as CONFIG_APP_RETRIEVE_LEN_ELF_SHA
does, followed by `...` in the releases that print it. If the firmware also carries a stamp
record its `@stamp` line follows, as an app calling `stamp_report()` in `app_main` would.
"""

from __future__ import annotations

from dataclasses import dataclass

from stamp.artifact.esp import AppDesc
from stamp.errors import ArtifactError

DEFAULT_HASH_LEN = 16
"""ESP-IDF's default CONFIG_APP_RETRIEVE_LEN_ELF_SHA."""
_GREEN, _RESET = "\x1b[0;32m", "\x1b[0m"


@dataclass(frozen=True)
class EspApp:
    """What a simulated ESP-IDF board runs: its app description and its ELF's hash."""

    desc: AppDesc
    """The app description read from the image."""
    elf_sha256: str
    """The full SHA-256 of the ELF (64 hex), as the running app knows it."""
    chip: str = "ESP32"
    """The chip as esptool names it ("ESP32-S2")."""


def _uses_app_init(idf_version: str) -> bool:
    """ESP-IDF 5.1 moved the application information from `cpu_start` to `app_init`."""
    version = idf_version.removeprefix("v").split("-", 1)[0].split(".")
    try:
        major, minor = int(version[0]), int(version[1]) if len(version) > 1 else 0
    except ValueError:
        return True
    return (major, minor) >= (5, 1)


def boot_log(
    app: EspApp,
    *,
    hash_len: int = DEFAULT_HASH_LEN,
    ellipsis: bool | None = None,
    report: bytes | None = None,
) -> bytes:
    """The bytes a board prints from reset to `app_main` (and `report` after, if given).

    `ellipsis` None: print `...` after the hash as the `cpu_start` releases did.
    """
    desc = app.desc
    tag = "app_init" if _uses_app_init(desc.idf_version) else "cpu_start"
    if ellipsis is None:
        ellipsis = tag == "cpu_start"
    chip = app.chip.lower().replace("-", "")
    lines = [
        f"ESP-ROM:{chip}-20210327",
        "rst:0x1 (POWERON),boot:0x8 (SPI_FAST_FLASH_BOOT)",
        "mode:DIO, clock div:1",
        "entry 0x403c98d0",
    ]
    logged = [
        ("boot", f"ESP-IDF {desc.idf_version} 2nd stage bootloader"),
        ("boot", f"chip revision: v0.0 ({app.chip})"),
        ("boot", "Loaded app from partition at offset 0x10000"),
        ("cpu_start", "Pro cpu start user code"),
        ("cpu_start", "cpu freq: 160000000 Hz"),
        (tag, "Application information:"),
        (tag, f"Project name:     {desc.project_name}"),
        (tag, f"App version:      {desc.app_version}"),
        (tag, f"Compile time:     {desc.compile_time}"),
        (tag, f"ELF file SHA256:  {app.elf_sha256[:hash_len]}{'...' if ellipsis else ''}"),
        (tag, f"ESP-IDF:          {desc.idf_version}"),
        ("heap_init", "Initializing. RAM available for dynamic allocation:"),
        ("main_task", "Started on CPU0"),
    ]
    ms = 24
    for tag_name, text in logged:
        lines.append(f"{_GREEN}I ({ms}) {tag_name}: {text}{_RESET}")
        ms += 6
    out = "\r\n".join(lines).encode("utf-8", errors="replace") + b"\r\n"
    if report is not None:
        out += report + b"\r\n"
    return out


def esp_app(data: bytes, name: str) -> EspApp | None:
    """The ESP-IDF app in a firmware file (an app .bin or its ELF), None for other firmware.

    ArtifactError when it is an ESP-IDF image that cannot run as a simulated app (damaged,
    or without the ELF hash the boot log prints).
    """
    from stamp.artifact.esp import elf_app_desc, looks_like_esp_image, read_esp_image
    from stamp.artifact.image import load_bytes

    if looks_like_esp_image(data):
        image = read_esp_image(data, name)
        problems = image.problems(name)
        if problems:
            raise ArtifactError(problems[0])
        assert image.app_desc is not None and image.elf_sha256 is not None
        return EspApp(desc=image.app_desc, elf_sha256=image.elf_sha256, chip=image.chip)
    firmware = load_bytes(data, name)
    if firmware.elf is None:
        return None
    desc = elf_app_desc(firmware.elf)
    if desc is None:
        return None
    return EspApp(desc=desc, elf_sha256=firmware.facts.sha256)
