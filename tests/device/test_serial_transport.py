"""SerialTransport against the simulated board over real pseudo-terminals."""

from __future__ import annotations

import errno
import os
import time
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from stamp.cli.heard_words import heard_text
from stamp.device.transport.base import Heard, HeardKind
from stamp.device.transport.serial import PERMISSION_GRACE, SerialTransport, classify_open_error
from stamp.errors import EXIT_NO_REPORT, EXIT_USAGE, DeviceError, DeviceUnreachable
from stamp.sim.serial import SerialBoard

GIT_A = "0123456789abcdef0123456789abcdef01234567"
GIT_B = "fedcba9876543210fedcba9876543210fedcba98"
IDENTITY_A = {"edit": 41, "git": GIT_A, "dirty": False, "build_id": "ab" * 20}
IDENTITY_B = {"edit": 42, "git": GIT_B, "dirty": True, "build_id": "cd" * 20}
DEADLINE = 30.0
"""Seconds a test listens at most: generous for a loaded machine, never reached when it works."""


@pytest.fixture
def boards() -> Iterator[Callable[..., SerialBoard]]:
    """Start simulated boards; every one is closed at the end of the test."""
    started: list[SerialBoard] = []

    def start(identity: dict[str, Any] = IDENTITY_A, **options: Any) -> SerialBoard:
        board = SerialBoard(identity, **options)
        started.append(board)
        board.start()
        return board

    try:
        yield start
    finally:
        for board in started:
            board.close()


def until_report(transport: SerialTransport, seconds: float = DEADLINE) -> list[Heard]:
    """Everything heard up to and including the first report."""
    heard: list[Heard] = []
    for item in transport.listen(time.monotonic() + seconds):
        heard.append(item)
        if item.kind is HeardKind.REPORT:
            return heard
    raise AssertionError(f"no report; heard {[heard_text(h) for h in heard]}")


def wait_for(condition: Callable[[], bool], seconds: float = DEADLINE) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "condition never became true"
        time.sleep(0.02)


def texts(heard: list[Heard], kind: HeardKind) -> list[str]:
    return [heard_text(h) for h in heard if h.kind is kind]


def test_hears_the_boot_report_among_noise(boards: Callable[..., SerialBoard]) -> None:
    board = boards(boot_delay=0.5, answer_queries=False)
    with SerialTransport(board.path) as transport:
        heard = until_report(transport)
    report = heard[-1].report
    assert report is not None
    assert report.identity.known() == IDENTITY_A
    assert report.source == f"serial {board.path}"
    assert heard[0].kind is HeardKind.STATUS and board.path in heard_text(heard[0])
    lines = texts(heard, HeardKind.LINE)
    assert "boot: flash 1024 KiB, ram 128 KiB" in lines
    assert all(not line.endswith("\r") and line for line in lines)
    assert board.queries >= 1, "the transport asks as soon as the port opens"


def test_asks_when_the_boot_line_was_missed(boards: Callable[..., SerialBoard]) -> None:
    board = boards(boot_delay=0.0)
    wait_for(lambda: board.boots == 1)
    with SerialTransport(board.path) as transport:
        heard = until_report(transport)
    assert heard[-1].report is not None
    assert heard[-1].report.identity.known() == IDENTITY_A
    assert board.queries >= 1
    assert not texts(heard, HeardKind.LINE), "output from before the port opened is lost"


def test_asks_again_until_answered_then_stops(boards: Callable[..., SerialBoard]) -> None:
    silent = boards(boot_delay=3600.0, answer_queries=False)
    with SerialTransport(silent.path, query_interval=0.05) as transport:
        heard = list(transport.listen(time.monotonic() + 1.0))
    assert texts(heard, HeardKind.REPORT) == []
    assert silent.queries >= 2

    board = boards(boot_delay=3600.0)
    with SerialTransport(board.path, query_interval=0.05) as transport:
        asked_before_report = 0
        for item in transport.listen(time.monotonic() + 1.0):
            if item.kind is HeardKind.REPORT and not asked_before_report:
                asked_before_report = board.queries
    # At most one query can have been on its way when the answer arrived.
    assert 1 <= asked_before_report <= board.queries <= asked_before_report + 1


def test_waits_for_a_port_that_appears_later(
    boards: Callable[..., SerialBoard], tmp_path: Path
) -> None:
    link = tmp_path / "ttyACM-late"  # as udev's /dev/serial/by-id links appear
    heard: list[Heard] = []
    board: SerialBoard | None = None
    with SerialTransport(str(link), open_retry=0.05) as transport:
        for item in transport.listen(time.monotonic() + DEADLINE):
            heard.append(item)
            if item.kind is HeardKind.REPORT:
                break
            if board is None and heard_text(item) == f"waiting for {link} to appear":
                time.sleep(1.0)  # listening while there is nothing to open
                board = boards()
                link.symlink_to(board.path)
    statuses = texts(heard, HeardKind.STATUS)
    assert statuses == [f"waiting for {link} to appear", f"port {link} opened"]
    assert heard[-1].report is not None
    assert heard[-1].report.identity.known() == IDENTITY_A


def test_reopens_a_port_that_vanished(boards: Callable[..., SerialBoard], tmp_path: Path) -> None:
    """A USB device re-enumerates after a flash: the port goes away and comes back."""
    first = boards(IDENTITY_A)
    link = tmp_path / "ttyACM0"
    link.symlink_to(first.path)
    reports: list[dict[str, Any]] = []
    statuses: list[str] = []
    with SerialTransport(str(link), open_retry=0.05) as transport:
        for item in transport.listen(time.monotonic() + DEADLINE):
            if item.kind is HeardKind.STATUS:
                statuses.append(heard_text(item))
            if item.report is None:
                continue
            reports.append(item.report.identity.known())
            if len(reports) == 2:
                break
            first.close()  # the pty disappears under the open port
            second = boards(IDENTITY_B)
            (tmp_path / "new").symlink_to(second.path)
            os.replace(tmp_path / "new", link)
    assert reports == [IDENTITY_A, IDENTITY_B]
    assert statuses[0] == f"port {link} opened"
    assert statuses[1].startswith(f"lost {link} (")
    assert statuses[-1] == f"port {link} opened"


def test_a_port_that_never_appears_is_unreachable(tmp_path: Path) -> None:
    missing = tmp_path / "ttyUSB9"
    heard: list[Heard] = []
    with (
        SerialTransport(str(missing), open_retry=0.05) as transport,
        pytest.raises(DeviceUnreachable) as raised,
    ):
        heard.extend(transport.listen(time.monotonic() + 0.3))
    assert texts(heard, HeardKind.STATUS) == [f"waiting for {missing} to appear"]
    assert str(missing) in str(raised.value)
    assert raised.value.exit_code == EXIT_NO_REPORT
    assert raised.value.detail and "No such file" in raised.value.detail


@pytest.mark.parametrize(
    ("port", "message"),
    [
        ("{tmp}/plain-file", "is not a serial port"),
        ("{tmp}", "cannot use"),
        ("nosuchscheme://localhost:1", "cannot use serial port"),
    ],
)
def test_ports_that_cannot_work_are_usage_errors(tmp_path: Path, port: str, message: str) -> None:
    (tmp_path / "plain-file").write_text("not a tty\n")
    transport = SerialTransport(port.format(tmp=tmp_path))
    with pytest.raises(DeviceError) as raised:
        list(transport.listen(time.monotonic() + DEADLINE))
    assert message in str(raised.value)
    assert raised.value.exit_code == EXIT_USAGE
    assert not transport.is_open


def listen_unprivileged(path: str, *, allow_after: float | None) -> str:
    """Listen on `path` in a child that may not open it; what the child heard or raised.

    A real EACCES from open(2): as root the child drops to `nobody` and the pty is
    root's with mode 0600; otherwise the pty gets mode 0. With `allow_after`, access is
    granted after that many seconds, as udev does for a freshly enumerated USB port.
    """
    # Loaded before the fork: as `nobody` the child may not be able to read them.
    import termios

    import serial

    assert serial and termios
    root = os.geteuid() == 0
    os.chmod(path, 0o600 if root else 0)
    read_end, write_end = os.pipe()
    try:
        with warnings.catch_warnings():
            # Python 3.12+ warns about fork() when another test left a thread running;
            # the child only opens a port and exits.
            warnings.simplefilter("ignore", DeprecationWarning)
            pid = os.fork()
        if pid == 0:
            said = "nothing"
            try:
                if root:
                    os.setgid(65534)
                    os.setuid(65534)
                for item in SerialTransport(path).listen(time.monotonic() + DEADLINE):
                    if item.kind is HeardKind.STATUS and "opened" in heard_text(item):
                        said = heard_text(item)
                        break
            except DeviceError as exc:
                said = f"{exc.exit_code}|{exc}"
            finally:
                os.write(write_end, said.encode())
                os._exit(0)
        os.close(write_end)
        write_end = -1
        if allow_after is not None:
            time.sleep(allow_after)
            os.chmod(path, 0o666 if root else 0o600)
        said_bytes = b""
        while chunk := os.read(read_end, 4096):
            said_bytes += chunk
        os.waitpid(pid, 0)
    finally:
        for fd in (read_end, write_end):
            if fd >= 0:
                os.close(fd)
    return said_bytes.decode()


@pytest.fixture
def pty_path() -> Iterator[str]:
    master, slave = os.openpty()
    try:
        yield os.ttyname(slave)
    finally:
        os.close(master)
        os.close(slave)


def test_permission_denied_names_the_dialout_group(pty_path: str) -> None:
    assert listen_unprivileged(pty_path, allow_after=None) == (
        f"2|permission denied on {pty_path}: add yourself to the dialout group "
        "(sudo usermod -aG dialout $USER, then log in again)"
    )


def test_permission_granted_soon_after_is_waited_for(pty_path: str) -> None:
    assert PERMISSION_GRACE > 0.5
    assert listen_unprivileged(pty_path, allow_after=0.5) == f"port {pty_path} opened"


def test_open_errors_are_classified() -> None:
    import serial

    def pyserial_error(code: int) -> Exception:
        # What serialposix.Serial.open raises for a failed os.open.
        return serial.SerialException(code, f"could not open port /dev/x: [Errno {code}]")

    for transient in (errno.ENOENT, errno.ENODEV, errno.ENXIO, errno.EBUSY, errno.EIO):
        assert classify_open_error("/dev/x", pyserial_error(transient)) is None
    for permanent in (errno.EACCES, errno.EPERM, errno.ENOTTY):
        assert isinstance(classify_open_error("/dev/x", pyserial_error(permanent)), DeviceError)


def test_stopping_early_closes_the_port(boards: Callable[..., SerialBoard]) -> None:
    board = boards()
    transport = SerialTransport(board.path)
    listening = transport.listen(time.monotonic() + DEADLINE)
    for item in listening:
        if item.kind is HeardKind.REPORT:
            break
    assert transport.is_open and board.connected
    listening.close()
    assert not transport.is_open
    wait_for(lambda: not board.connected)

    with pytest.raises(RuntimeError), SerialTransport(board.path) as transport:
        for _ in transport.listen(time.monotonic() + DEADLINE):
            raise RuntimeError("the caller failed while listening")
    assert not transport.is_open
    wait_for(lambda: not board.connected)


def test_hears_every_reboot(boards: Callable[..., SerialBoard]) -> None:
    board = boards(boot_delay=0.0, reboot_every=0.3, answer_queries=False)
    reports = 0
    lines: list[str] = []
    with SerialTransport(board.path) as transport:
        for item in transport.listen(time.monotonic() + DEADLINE):
            lines.append(heard_text(item))
            if item.kind is HeardKind.REPORT:
                reports += 1
                if reports == 2:
                    break
    assert reports == 2
    assert "boot: stamp simulated board, reset reason watchdog" in lines
