"""`--reset`: DTR/RTS toggled the way esptool resets a dev board into its app.

Over a real RFC 2217 connection (pyserial's client in stamp, pyserial's PortManager in
tests/support/rfc2217.py) to a simulated ESP-IDF board that boots only when EN is pulsed;
on a pty, which has no modem lines, the transport says it could not reset.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from stamp.artifact.esp import read_esp_image
from stamp.artifact.manifest import Manifest, write_manifest
from stamp.cli.heard_words import heard_text
from stamp.device.transport.base import Heard, HeardKind
from stamp.device.transport.serial import SerialTransport
from stamp.identity import Identity
from stamp.sim.esp import EspApp, boot_log
from stamp.sim.serial import SerialBoard
from tests.support import FIXTURES, Stamp, make_repo
from tests.support.rfc2217 import AutoResetBridge

# pyserial's RFC 2217 client (3.5) names and starts its reader thread with deprecated calls.
pytestmark = [
    pytest.mark.filterwarnings("ignore:setDaemon:DeprecationWarning"),
    pytest.mark.filterwarnings("ignore:setName:DeprecationWarning"),
]
DEADLINE = 30.0
NEVER = 1e6
"""A boot delay no test reaches: the board boots only when reset."""


def blink_app() -> EspApp:
    image = read_esp_image((FIXTURES / "esp" / "esp_idf_blink_esp32s2.bin").read_bytes(), "blink")
    assert image.app_desc is not None and image.elf_sha256 is not None
    return EspApp(desc=image.app_desc, elf_sha256=image.elf_sha256, chip=image.chip)


@pytest.fixture
def board() -> Iterator[SerialBoard]:
    board = SerialBoard({}, boot_delay=NEVER, answer_queries=False, boot_log=boot_log(blink_app()))
    board.start()
    try:
        yield board
    finally:
        board.close()


def listen_until(transport: SerialTransport, text: str) -> list[Heard]:
    heard: list[Heard] = []
    for item in transport.listen(time.monotonic() + DEADLINE):
        heard.append(item)
        if text in heard_text(item):
            return heard
    raise AssertionError(f"never heard {text!r}; heard {[heard_text(h) for h in heard]}")


def test_reset_pulses_en_with_io0_high_and_the_board_boots(board: SerialBoard) -> None:
    with (
        AutoResetBridge(board) as bridge,
        SerialTransport(bridge.device.removeprefix("serial:"), query=False, reset=True) as t,
    ):
        heard = listen_until(t, "ELF file SHA256:")
    assert bridge.resets == 1 and board.boots == 1 and t.resets == 1
    # Every state the lines went through: EN low (RTS asserted, DTR not) then released,
    # and IO0 never low while EN rose (DTR asserted alone would select download mode).
    pulse = bridge.lines.index((False, True))
    assert (False, False) in bridge.lines[pulse:]
    assert all(not (dtr and not rts) for dtr, rts in bridge.lines[pulse:])
    statuses = [heard_text(h) for h in heard if h.kind is HeardKind.STATUS]
    assert any("reset the board through DTR/RTS" in s for s in statuses)
    [report] = [h.report for h in heard if h.kind is HeardKind.REPORT]
    assert report is not None and report.identity.elf_sha256 == "3059e6b55a965865"


def test_without_reset_a_board_that_booted_before_says_nothing(board: SerialBoard) -> None:
    with (
        AutoResetBridge(board) as bridge,
        SerialTransport(bridge.device.removeprefix("serial:"), query=False) as t,
    ):
        heard = list(t.listen(time.monotonic() + 1.0))
    assert bridge.resets == 0 and board.boots == 0
    assert not [h for h in heard if h.kind is HeardKind.LINE]


def test_on_a_pty_the_transport_says_it_could_not_reset(board: SerialBoard) -> None:
    with SerialTransport(board.path, query=False, reset=True) as t:
        heard = listen_until(t, "could not reset")
    assert "has no DTR/RTS lines" in heard_text(heard[-1]) and t.resets == 0


def test_stamp_verify_reset_end_to_end(
    board: SerialBoard, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, stamp: Stamp
) -> None:
    """`stamp verify --reset` over RFC 2217: the board boots on the EN pulse and verifies."""
    repo = make_repo(tmp_path / "repo")
    monkeypatch.chdir(repo.path)
    code, _, err = stamp("manifest", FIXTURES / "esp" / "esp_idf_blink_esp32s2.bin", "-o", "m.json")
    assert code == 0, err
    with AutoResetBridge(board) as bridge:
        code, out, err = stamp("verify", "--device", bridge.device, "--manifest", "m.json",
                               "--timeout", "30", "--reset")  # fmt: skip
        assert code == 0, err
        assert out.startswith("VERIFIED: device runs blink qa-test-v5.0-20220830-4-g4532e6")
        assert "reset the board through DTR/RTS" in err
        assert bridge.resets == 1 and board.boots == 1 and board.queries == 0


def test_reset_is_for_serial_ports_only(tmp_path: Path, stamp: Stamp) -> None:
    manifest = tmp_path / "m.json"
    write_manifest(Manifest(identity=Identity(elf_sha256="ab" * 32), recorded_at=""), manifest)
    code, _, err = stamp(
        "verify", "--device", "particle:abc", "--manifest", manifest, "--reset", "--timeout", "1"
    )
    assert code == 2 and "--reset toggles a serial port's DTR/RTS lines" in err
