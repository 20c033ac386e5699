"""`stamp verify` over real serial ports: ptys, a socket:// port, and `stamp sim serial`."""

from __future__ import annotations

import json
import os
import signal
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from stamp.cli.app import run
from tests.support import GitRepo, run_stamp, spawn_stamp
from tests.support.verify import (
    GIT_NEW,
    GIT_OLD,
    Build,
    PtyBoard,
    make_build,
    record_history,
    report_line,
    sim_serial,
)


@pytest.fixture
def builds(repo: GitRepo, monkeypatch: pytest.MonkeyPatch) -> tuple[Build, Build]:
    """Edit 109 (older, 25 min ago) and edit 111 (newest), both in the repo's history."""
    monkeypatch.chdir(repo.path)
    old = make_build(repo.path / "build", 109, GIT_OLD)
    new = make_build(repo.path / "build", 111, GIT_NEW)
    record_history(repo.path, old, new)
    return old, new


def test_verified_on_a_pty_board(
    builds: tuple[Build, Build], capsys: pytest.CaptureFixture[str]
) -> None:
    _, new = builds
    noise = (b"boot: Device OS 5.8\r\n", b"\x00\xff garbage\r\n")
    with PtyBoard(answer=report_line(new.manifest), noise=noise) as board:
        code = run(["verify", "--device", f"serial:{board.port}", "--timeout", "20"])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert out == "VERIFIED: device runs edit 111 (git 9f8e7d6c)\n"
    assert "using the newest build in the history, edit 111" in err
    assert f"port {board.port} opened" in err
    assert board.queries >= 1


def test_json_verdict_record(
    builds: tuple[Build, Build], capsys: pytest.CaptureFixture[str]
) -> None:
    old, new = builds
    with PtyBoard(answer=report_line(old.manifest, uptime=12)) as board:
        device = f"serial:{board.port}?baud=9600"
        manifest = str(new.manifest_path)
        code = run(["verify", "--device", device, "--json", "--manifest", manifest])
    record = json.loads(capsys.readouterr().out)
    assert code == 1
    assert record["status"] == "mismatch"
    assert record["message"].startswith("MISMATCH: device runs edit 109 (git 1a2b3c4d, built 25 ")
    assert record["device"] == f"serial {board.port} at 9600 baud"
    assert record["manifest"] == str(new.manifest_path)
    assert record["expected"]["edit"] == 111
    assert record["reported"]["edit"] == 109 and record["reported"]["extra"] == {"uptime": 12}
    assert [c["key"] for c in record["compared"] if not c["match"]] == ["edit", "git"]
    assert record["matched_build"]["edit"] == 109
    assert record["heard"]["reports"] == 1


def test_pty_nobody_writes_to_is_exit_3(builds: tuple[Build, Build], repo: GitRepo) -> None:
    with PtyBoard() as board:
        done = run_stamp(
            "verify", "--device", f"serial:{board.port}", "--timeout", "1.5", cwd=repo.path
        )
    assert done.returncode == 3, done.stderr
    assert done.stdout == (
        f"NO REPORT: nothing identified the build on serial {board.port} at 115200 baud "
        f"within 1.5 s: port {board.port} opened\n"
    )
    assert b"?stamp\n" in board.received  # it asked


def test_pty_with_only_noise_counts_the_lines(
    builds: tuple[Build, Build], capsys: pytest.CaptureFixture[str]
) -> None:
    noise = (b"sensor=3\r\n", b"@stamp {not json}\r\n", b"tick\n")
    with PtyBoard(noise=noise) as board:
        code = run(["verify", "--device", f"serial:{board.port}", "--timeout", "1.5"])
    out = capsys.readouterr().out
    assert code == 3
    assert "lines received, none was a report" in out


@pytest.fixture
def closed_port() -> Iterator[int]:
    """A loopback TCP port with nothing listening on it."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    yield port


def test_socket_port_with_nothing_listening_is_exit_3(
    builds: tuple[Build, Build], repo: GitRepo, closed_port: int
) -> None:
    device = f"serial:socket://127.0.0.1:{closed_port}"
    done = run_stamp("verify", "--device", device, "--timeout", "1", cwd=repo.path)
    assert done.returncode == 3, done.stderr
    assert done.stdout.startswith(
        f"NO REPORT: serial socket://127.0.0.1:{closed_port} at 115200 baud unreachable: "
    )
    assert "connection refused" in done.stdout  # issue 11.10: not "did not appear"
    assert "did not appear" not in done.stdout and "is the device connected" not in done.stdout


def test_socket_port_that_never_speaks_is_exit_3(
    builds: tuple[Build, Build], capsys: pytest.CaptureFixture[str]
) -> None:
    with socket.create_server(("127.0.0.1", 0)) as server:
        port = server.getsockname()[1]
        code = run(["verify", "--device", f"serial:socket://127.0.0.1:{port}", "--timeout", "1"])
    assert code == 3
    assert f"port socket://127.0.0.1:{port} opened" in capsys.readouterr().out


def test_a_port_that_appears_late(
    builds: tuple[Build, Build], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _, new = builds
    link = tmp_path / "ttyBOARD"
    with PtyBoard(answer=report_line(new.manifest)) as board:

        def plug_in() -> None:
            time.sleep(1.5)
            os.symlink(board.port, link)

        plugger = threading.Thread(target=plug_in)
        plugger.start()
        try:
            code = run(["verify", "--device", f"serial:{link}", "--timeout", "20"])
        finally:
            plugger.join()
    out, err = capsys.readouterr()
    assert code == 0, err
    assert out.startswith("VERIFIED: device runs edit 111")
    assert f"waiting for {link} to appear" in err


# --- `stamp sim serial` ---------------------------------------------------------------


def test_sim_serial_verified(builds: tuple[Build, Build], repo: GitRepo) -> None:
    _, new = builds
    with sim_serial(new.image, repo.path) as device:
        done = run_stamp(
            "verify", "--device", device, "--manifest", str(new.manifest_path), cwd=repo.path
        )
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("VERIFIED: device runs edit 111 (git 9f8e7d6c")


def test_sim_serial_older_build_is_a_mismatch_naming_it(
    builds: tuple[Build, Build], repo: GitRepo
) -> None:
    old, new = builds
    with sim_serial(old.image, repo.path) as device:
        done = run_stamp(
            "verify", "--device", device, "--manifest", str(new.manifest_path), cwd=repo.path
        )
    assert done.returncode == 1, done.stderr
    first = done.stdout.splitlines()[0]
    assert first.startswith("MISMATCH: device runs edit 109 (git 1a2b3c4d, built 25 min ago)")
    assert first.endswith("; expected edit 111")
    assert "  edit: expected 111, device reports 109" in done.stdout


def test_a_dirty_flag_that_differs_is_spelled_as_in_the_report(
    builds: tuple[Build, Build], repo: GitRepo
) -> None:
    _, new = builds
    dirty = make_build(repo.path / "build" / "dirty", 111, GIT_NEW, dirty=True)
    with sim_serial(new.image, repo.path) as device:
        done = run_stamp(
            "verify", "--device", device, "--manifest", str(dirty.manifest_path), cwd=repo.path
        )
    assert done.returncode == 1, done.stderr
    assert "  dirty: expected true, device reports false\n" in done.stdout


def test_a_file_that_is_not_a_serial_port_is_exit_2(
    builds: tuple[Build, Build], capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(["verify", "--device", "serial:/dev/null", "--timeout", "5"]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert "/dev/null is not a serial port" in err


def test_ctrl_c_while_waiting_is_exit_130(builds: tuple[Build, Build], repo: GitRepo) -> None:
    with PtyBoard() as board:
        proc = spawn_stamp("verify", "--device", f"serial:{board.port}", cwd=repo.path)
        try:
            assert proc.stderr is not None
            for line in proc.stderr:
                if "opened" in line:
                    break
            proc.send_signal(signal.SIGINT)
            out, err = proc.communicate(timeout=30)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.communicate()
    assert proc.returncode == 130
    assert out == ""
    assert "interrupted" in err and "Traceback" not in err
