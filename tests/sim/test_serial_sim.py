"""`stamp sim serial`: the identity it reads from a firmware file, and the command itself."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from stamp.artifact.build_id import scan_build_id
from stamp.cli.app import run
from stamp.device.transport.base import HeardKind
from stamp.device.transport.serial import SerialTransport
from stamp.errors import EXIT_INTERRUPTED, EXIT_OK, EXIT_USAGE, ArtifactError
from stamp.record import StampRecord
from stamp.sim.serial import identity_from_image, report_line
from tests.support import spawn_stamp

GIT = "0123456789abcdef0123456789abcdef01234567"
BUILD_ID = bytes(range(0x10, 0x24))
DEADLINE = 30.0


def build_id_note(build_id: bytes) -> bytes:
    """A GNU build-id note as the linker writes it (little-endian)."""
    header = len(b"GNU\0").to_bytes(4, "little") + len(build_id).to_bytes(4, "little")
    return header + (3).to_bytes(4, "little") + b"GNU\0" + build_id


def image(*parts: bytes) -> bytes:
    """A raw image: some code-like filler around the given parts."""
    return b"\x00\x20\x00\x20" + b"\xa5" * 60 + b"".join(parts) + b"\xff" * 32


RECORD = StampRecord(edit=7, git=GIT, dirty=False).pack()


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (image(RECORD), {"edit": 7, "git": GIT, "dirty": False}),
        (
            image(RECORD, build_id_note(BUILD_ID)),
            {"edit": 7, "git": GIT, "dirty": False, "build_id": BUILD_ID.hex()},
        ),
        (image(RECORD, RECORD), {"edit": 7, "git": GIT, "dirty": False}),
        (
            image(StampRecord(edit=0, git="unknown", dirty=None).pack()),
            {"edit": 0, "git": "unknown"},
        ),
        (
            image(StampRecord(edit=3, git=GIT, dirty=True).pack()),
            {"edit": 3, "git": GIT, "dirty": True},
        ),
    ],
)
def test_identity_from_a_raw_image(data: bytes, expected: dict[str, Any]) -> None:
    assert identity_from_image(data) == expected


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (image(), "no stamp record"),
        (b"\0" * 64 + RECORD[:100], "no stamp record"),
        (image(RECORD, StampRecord(edit=8, git=GIT, dirty=False).pack()), "2 different"),
        (b"\x7fELF" + b"\0" * 12 + RECORD, "not a readable ELF"),
    ],
)
def test_images_without_one_identity_are_refused(data: bytes, message: str) -> None:
    with pytest.raises(ArtifactError, match=message):
        identity_from_image(data)


def test_raw_build_id_needs_exactly_one_plausible_note() -> None:
    assert scan_build_id(image(build_id_note(BUILD_ID))) == BUILD_ID.hex()
    assert scan_build_id(image(build_id_note(BUILD_ID), build_id_note(b"\1" * 20))) is None
    assert scan_build_id(image(build_id_note(b""))) is None
    assert scan_build_id(build_id_note(BUILD_ID)[:-1]) is None


def test_report_line_is_what_the_c_template_prints() -> None:
    line = report_line({"edit": 7, "git": GIT, "dirty": False, "build_id": "ab12"})
    assert line == (
        b'@stamp {"edit":7,"git":"' + GIT.encode() + b'","dirty":false,"build_id":"ab12"}'
    )


@contextmanager
def sim_process(*args: str, cwd: Path) -> Iterator[tuple[subprocess.Popen[str], str]]:
    """`stamp sim serial ARGS` as a real process; yields it and its first stdout line."""
    proc = spawn_stamp("sim", "serial", *args, cwd=cwd)
    try:
        assert proc.stdout is not None
        yield proc, proc.stdout.readline()
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.communicate(timeout=DEADLINE)


def hear_report(port: str) -> dict[str, Any]:
    with SerialTransport(port) as transport:
        for item in transport.listen(time.monotonic() + DEADLINE):
            if item.kind is HeardKind.REPORT:
                assert item.report is not None
                return item.report.identity.known()
    raise AssertionError("no report")


@pytest.mark.parametrize(
    ("sig", "code"), [(signal.SIGTERM, EXIT_OK), (signal.SIGINT, EXIT_INTERRUPTED)]
)
def test_sim_serial_command(tmp_path: Path, sig: signal.Signals, code: int) -> None:
    firmware = tmp_path / "app.bin"
    firmware.write_bytes(image(RECORD, build_id_note(BUILD_ID)))
    with sim_process("--firmware", str(firmware), cwd=tmp_path) as (proc, first):
        assert re.fullmatch(r'\{"device": "serial:/dev/pts/\d+"\}\n', first), first
        port = json.loads(first)["device"].removeprefix("serial:")
        assert hear_report(port) == {
            "edit": 7,
            "git": GIT,
            "dirty": False,
            "build_id": BUILD_ID.hex(),
        }
        proc.send_signal(sig)
        assert proc.wait(timeout=DEADLINE) == code
        assert not Path(port).exists(), "the pty is gone with the simulator"


def test_sim_serial_options_override_the_firmware(tmp_path: Path) -> None:
    firmware = tmp_path / "app.bin"
    firmware.write_bytes(image(RECORD))
    other = "f" * 40
    with sim_process(
        "--firmware",
        str(firmware),
        "--edit",
        "9",
        "--git",
        other.upper(),
        "--dirty",
        "--build-id",
        "00FF",
        cwd=tmp_path,
    ) as (proc, first):
        port = json.loads(first)["device"].removeprefix("serial:")
        assert hear_report(port) == {"edit": 9, "git": other, "dirty": True, "build_id": "00ff"}
        proc.terminate()
        assert proc.wait(timeout=DEADLINE) == EXIT_OK


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--git", "abc"], "40-hex"),
        (["--build-id", "xyz"], "hex digits"),
        (["--firmware", "{tmp}/empty.bin"], "no stamp record"),
        (["--firmware", "{tmp}/missing.bin"], "does not exist"),
        (["--reboot-every", "0"], "reboot-every"),
    ],
)
def test_sim_serial_refuses_bad_input(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    (tmp_path / "empty.bin").write_bytes(image())
    argv = ["sim", "serial", *(arg.format(tmp=tmp_path) for arg in args)]
    assert run(argv) == EXIT_USAGE
    captured = capsys.readouterr()
    assert captured.out == ""
    assert message in captured.err
