"""ESP-IDF's standard boot log as a report (SPEC section 6): no stamp code on the device.

Every ESP-IDF app prints, from the `cpu_start` tag (the `app_init` tag since ESP-IDF 5.1):

    I (265) cpu_start: Project name:     blink
    I (270) cpu_start: App version:      qa-test-v5.0-20220830-4-g4532e6
    I (276) cpu_start: Compile time:     Sep 13 2022 19:46:07
    I (282) cpu_start: ELF file SHA256:  3059e6b55a965865...
    I (288) cpu_start: ESP-IDF:          v5.0-beta1-427-g4532e6e0b2-dirt

The hash is cut to CONFIG_APP_RETRIEVE_LEN_ELF_SHA digits (16 by default; older releases
printed 8 or 9 followed by `...`). Devices and monitors add ANSI colours (`\\x1b[0;32m`),
timestamps (Arduino's `16:09:58.129 -> `, esp-idf-monitor's `--timestamps`) and `\\r\\n`.
`BootLogScanner` reads such lines one at a time and gives the report when the hash line
arrives, with the informational lines of the same boot that came before it.

Considered: esp-idf-monitor matches the same lines with regular expressions inside its
console (it is not a library with a parser to call), so the few patterns live here.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from stamp.artifact.manifest import Manifest
from stamp.device.report_line import Report
from stamp.identity import Identity, parse_identity

ELF_SHA256_DIGITS = 64
HASH_LEN_OPTION = "CONFIG_APP_RETRIEVE_LEN_ELF_SHA"
"""The sdkconfig option that sets how many digits of the ELF hash the boot log prints."""

# CSI sequences (colours, cursor moves) and the bare escape a cut-off sequence leaves.
_ANSI = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b")
_FIELD = re.compile(
    r"\b(?:cpu_start|app_init): "
    r"(?P<label>Project name|App version|Compile time|ELF file SHA256|ESP-IDF):[ \t]*"
    r"(?P<value>.*?)[ \t]*$"
)
_HASH = re.compile(r"(?P<digits>[0-9a-fA-F]*)(?P<ellipsis>\.\.\.|…)?")
_INFO_KEYS = {
    "Project name": "project_name",
    "App version": "app_version",
    "Compile time": "compile_time",
    "ESP-IDF": "idf_version",
}


@dataclass(frozen=True)
class BootInfo:
    """What one boot log said about the running app."""

    identity: Identity
    """`elf_sha256`: the digits of the ELF file's SHA-256 it printed, lowercase (a prefix of
    64); and the app description lines of the same boot printed before the hash
    (`project_name`, `app_version`, `compile_time`; `idf_version` is usually printed after)."""
    cut_short: bool
    """The hash was followed by `...`, as older ESP-IDF releases print it."""

    @property
    def digits(self) -> int:
        """How many of the 64 digits the device printed."""
        return len(self.identity.elf_sha256 or "")


def clean_line(raw: bytes | str) -> str:
    """A line as text without ANSI escape sequences, its `\\r` or surrounding blanks."""
    text = raw.decode("utf-8", errors="replace") if isinstance(raw, bytes) else raw
    return _ANSI.sub("", text).strip()


class BootLogScanner:
    """Reads boot-log lines one at a time; `feed` returns a BootInfo at the hash line.

    The informational lines of a boot are kept until its hash line; a line from a new
    boot's first field (`Project name:`) starts over, so a reset between the lines does
    not mix two boots.
    """

    def __init__(self) -> None:
        self._info: dict[str, str] = {}

    def feed(self, raw: bytes | str) -> BootInfo | None:
        match = _FIELD.search(clean_line(raw))
        if match is None:
            return None
        label, value = match["label"], match["value"]
        if label == "ELF file SHA256":
            return self._hash(value)
        if label == "Project name":
            self._info = {}
        self._info[_INFO_KEYS[label]] = value
        return None

    def _hash(self, value: str) -> BootInfo | None:
        found = _HASH.fullmatch(value)
        if found is None or not found["digits"] or len(found["digits"]) > ELF_SHA256_DIGITS:
            self._info = {}
            return None
        # Hex digits and text the patterns matched: parse_identity cannot refuse them.
        identity = parse_identity({**self._info, "elf_sha256": found["digits"].lower()})
        info = BootInfo(identity, cut_short=found["ellipsis"] is not None)
        self._info = {}
        return info


def boot_report(info: BootInfo, source: str) -> Report:
    """The Report a boot log makes: the printed hash digits and the app's description."""
    return Report(identity=info.identity, source=source)


def answers_query(expected: Manifest) -> bool:
    """Whether the firmware answers `?stamp`: one with a stamp record does; an ESP-IDF app
    without one reports only its boot log, so nothing is sent to it (SPEC section 6)."""
    identity = expected.identity
    return identity.elf_sha256 is None or identity.edit is not None
