"""`stamp.proc.run_streaming`, which runs flash commands: output as it comes, the exit
status, a timeout, and a command that leaves a daemon holding its output pipe."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from contextlib import suppress
from pathlib import Path

import pytest

from stamp.proc import run_streaming


def python(code: str) -> list[str]:
    return [sys.executable, "-c", code]


def gone(pid: int) -> bool:
    """The process has exited (a zombie nobody reaps counts as gone)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return True
    return state == "Z"


def test_lines_arrive_in_order_with_stderr_merged() -> None:
    lines: list[str] = []
    status = run_streaming(
        python(
            "import sys\n"
            "print('one', flush=True)\n"
            "print('two', file=sys.stderr, flush=True)\n"
            "sys.stdout.write('three\\r\\nno newline at the end')\n"
            "sys.exit(4)\n"
        ),
        lines.append,
    )
    assert status == 4
    assert lines == ["one", "two", "three", "no newline at the end"]


def test_a_line_is_shown_before_the_command_ends(tmp_path: Path) -> None:
    """The command waits for a file that the callback creates when it sees the first line."""
    flag = tmp_path / "seen"
    lines: list[str] = []

    def on_line(line: str) -> None:
        lines.append(line)
        flag.touch()

    code = (
        "import pathlib, sys, time\n"
        "print('waiting', flush=True)\n"
        f"flag = pathlib.Path({str(flag)!r})\n"
        "while not flag.exists(): time.sleep(0.01)\n"
        "print('done')\n"
    )
    assert run_streaming(python(code), on_line, timeout=60) == 0
    assert lines == ["waiting", "done"]


def test_the_environment_is_scrubbed_and_the_directory_set(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    lines: list[str] = []
    code = "import os; print(os.getcwd()); print(os.environ.get('LC_ALL'), 'GIT_DIR' in os.environ)"
    monkeypatch.setenv("GIT_DIR", "/elsewhere")
    run_streaming(python(code), lines.append, cwd=tmp_path)
    assert lines == [str(tmp_path), "C False"]


def test_a_timeout_stops_the_command() -> None:
    lines: list[str] = []
    code = "import os, time; print(os.getpid(), flush=True); time.sleep(60)"
    with pytest.raises(subprocess.TimeoutExpired):
        run_streaming(python(code), lines.append, timeout=1)
    assert gone(int(lines[0]))


def test_a_daemon_left_behind_does_not_keep_it_waiting() -> None:
    """`openocd &`-style: a grandchild inherits the output pipe and outlives the command."""
    lines: list[str] = []
    code = (
        "import subprocess, sys\n"
        "child = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)'])\n"
        "print(child.pid, flush=True)\n"
    )
    try:
        assert run_streaming(python(code), lines.append, timeout=60) == 0
        assert not gone(int(lines[0]))  # it returned while the daemon still runs
    finally:
        if lines:
            with suppress(ProcessLookupError):
                os.kill(int(lines[0]), signal.SIGKILL)


def test_a_missing_program_is_an_oserror() -> None:
    with pytest.raises(FileNotFoundError):
        run_streaming(["/nonexistent/flash-tool"], print)
